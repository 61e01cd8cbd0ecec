//! The original's transfer network: an ImageNet backbone's trunk with a new head (dense 512,
//! LeakyReLU 0.3, dropout 0.5, dense 10), taking Fashion-MNIST images `[N, 1, 28, 28]` (floats
//! in 0..1) and preprocessing them itself ([`preprocess`]: resized to the configured side,
//! 3 channels, the backbone's normalisation), so that it trains, evaluates and explains itself
//! like every other network of the kit.
//!
//! Variables: the trunk's under `trunk.` (the reference's names after it), the head's under
//! `head.` (`head.dense.*`, `head.output.*`). [`TransferHead`] is the head alone on pooled
//! features `[N, D]`, with the same variable names, for training on cached features while the
//! trunk is frozen.

use serde::{Deserialize, Serialize};
use tch::nn::{self, ModuleT};
use tch::Tensor;

use super::backbone::{preprocess, Backbone};
use super::classifier::Classifier;
use super::kind::ModelKind;
use super::layers::{glorot_uniform, is_channels_last, linear_params, to_channels_last, Recorder};
use super::trunk::Trunk;
use crate::error::{Error, Result};

/// Settings of a [`TransferNet`]; the defaults are the original's head.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct TransferConfig {
    /// Side the 28×28 images are resized to (the original: 150); at least the backbone's minimum.
    pub input_size: usize,
    /// Width of the head's hidden dense layer.
    pub dense: i64,
    /// Negative slope of the head's LeakyReLU.
    pub leaky_slope: f64,
    /// Dropout after the hidden dense layer.
    pub dropout: f64,
    /// Run the trunk in training mode when the network trains: batch norm normalises with the
    /// batch's statistics and updates its running ones (and EfficientNet's stochastic depth is
    /// on), as any network trained from scratch needs (the default). Off keeps the ImageNet
    /// statistics fixed, as fine-tuning does.
    pub trunk_train_mode: bool,
}

impl Default for TransferConfig {
    fn default() -> Self {
        TransferConfig {
            input_size: 150,
            dense: 512,
            leaky_slope: 0.3,
            dropout: 0.5,
            trunk_train_mode: true,
        }
    }
}

impl TransferConfig {
    fn check(&self, backbone: Backbone) -> Result<()> {
        if self.input_size < backbone.min_input() {
            return Err(Error::param(
                "input_size",
                format!(
                    "{} is below {}'s minimum input of {} pixels",
                    self.input_size,
                    backbone.title(),
                    backbone.min_input()
                ),
            ));
        }
        if self.dense < 1 || !(0.0..1.0).contains(&self.dropout) {
            return Err(Error::param(
                "head",
                "the dense width must be positive and the dropout in [0, 1)",
            ));
        }
        Ok(())
    }
}

/// The head: dense → LeakyReLU → dropout → dense 10, on features `[N, D]`.
#[derive(Debug)]
struct Head {
    dense: nn::Linear,
    output: nn::Linear,
}

impl Head {
    fn new(vs: &nn::Path, features: i64, dense: i64) -> Head {
        let linear = |name: &str, i: i64, o: i64| {
            nn::linear(
                vs / name,
                i,
                o,
                nn::LinearConfig {
                    ws_init: glorot_uniform(i, o),
                    bs_init: Some(nn::Init::Const(0.0)),
                    bias: true,
                },
            )
        };
        Head {
            dense: linear("dense", features, dense),
            output: linear("output", dense, 10),
        }
    }

    /// `(hidden features after the activation, logits)`.
    fn forward(
        &self,
        features: &Tensor,
        config: &TransferConfig,
        train: bool,
        rec: &mut Recorder<'_>,
    ) -> (Tensor, Tensor) {
        let h = features
            .apply(&self.dense)
            .leaky_relu_with_slope(config.leaky_slope);
        rec.keep("dense", &h);
        let logits = h.dropout(config.dropout, train).apply(&self.output);
        rec.keep("output", &logits);
        (h, logits)
    }

    fn layers(&self) -> Vec<(String, i64)> {
        vec![
            ("dense".into(), linear_params(&self.dense)),
            ("output".into(), linear_params(&self.output)),
        ]
    }
}

trait LeakyRelu {
    fn leaky_relu_with_slope(&self, slope: f64) -> Tensor;
}

impl LeakyRelu for Tensor {
    fn leaky_relu_with_slope(&self, slope: f64) -> Tensor {
        self.maximum(&(self * slope))
    }
}

/// A backbone's trunk with the original's head: images `[N, 1, 28, 28]` in, logits `[N, 10]` out.
#[derive(Debug)]
pub struct TransferNet {
    pub backbone: Backbone,
    pub config: TransferConfig,
    trunk: Box<dyn Trunk>,
    head: Head,
}

impl TransferNet {
    /// Creates the variables under `vs` (`trunk.…`, `head.…`), all randomly initialised: load
    /// ImageNet weights into the trunk with [`super::backbone::load_trunk_weights`].
    pub fn new(vs: &nn::Path, backbone: Backbone, config: &TransferConfig) -> Result<TransferNet> {
        config.check(backbone)?;
        let trunk = backbone.build_trunk(&(vs / "trunk"));
        let head = Head::new(&(vs / "head"), backbone.feature_size(), config.dense);
        Ok(TransferNet {
            backbone,
            config: config.clone(),
            trunk,
            head,
        })
    }
}

impl ModuleT for TransferNet {
    fn forward_t(&self, xs: &Tensor, train: bool) -> Tensor {
        self.run(xs, train, None).1
    }
}

impl Classifier for TransferNet {
    fn kind(&self) -> ModelKind {
        ModelKind::for_backbone(self.backbone)
    }

    fn l2_kernels(&self) -> Vec<(Tensor, f64)> {
        Vec::new()
    }

    fn layers(&self) -> Vec<(String, i64)> {
        let mut v = vec![
            ("input".to_string(), 0),
            (
                self.backbone.last_stage().to_string(),
                self.backbone.trunk_params(),
            ),
            ("pool".to_string(), 0),
        ];
        v.extend(self.head.layers());
        v
    }

    fn run(
        &self,
        xs: &Tensor,
        train: bool,
        record: Option<&mut Vec<(String, Tensor)>>,
    ) -> (Tensor, Tensor) {
        let mut rec = Recorder(record);
        // The size was checked when the network was built, so preprocessing cannot fail on it;
        // a wrongly shaped input fails in the trunk like any other network's would.
        let mut x = match preprocess(self.backbone, xs, self.config.input_size) {
            Ok(x) => x,
            Err(_) => xs.shallow_clone(),
        };
        if is_channels_last(self.trunk.first_kernel()) {
            // The trainer's CPU layout: feed the trunk in the order of its kernels.
            x = to_channels_last(&x);
        }
        rec.keep("input", &x);
        let pooled = self
            .trunk
            .forward(&x, train && self.config.trunk_train_mode, &mut rec);
        rec.keep("pool", &pooled);
        self.head.forward(&pooled, &self.config, train, &mut rec)
    }
}

/// The original's head alone, on pooled trunk features `[N, D]`, for training on cached
/// features while the trunk is frozen. Its variables are named as in [`TransferNet`]
/// (`head.dense.*`, `head.output.*`) when built under the same root.
#[derive(Debug)]
pub struct TransferHead {
    pub backbone: Backbone,
    pub config: TransferConfig,
    head: Head,
}

impl TransferHead {
    /// Creates the head's variables under `vs / "head"`.
    pub fn new(vs: &nn::Path, backbone: Backbone, config: &TransferConfig) -> Result<TransferHead> {
        config.check(backbone)?;
        Ok(TransferHead {
            backbone,
            config: config.clone(),
            head: Head::new(&(vs / "head"), backbone.feature_size(), config.dense),
        })
    }
}

impl ModuleT for TransferHead {
    fn forward_t(&self, xs: &Tensor, train: bool) -> Tensor {
        self.run(xs, train, None).1
    }
}

impl Classifier for TransferHead {
    fn kind(&self) -> ModelKind {
        ModelKind::for_backbone(self.backbone)
    }

    fn l2_kernels(&self) -> Vec<(Tensor, f64)> {
        Vec::new()
    }

    fn layers(&self) -> Vec<(String, i64)> {
        self.head.layers()
    }

    fn run(
        &self,
        xs: &Tensor,
        train: bool,
        record: Option<&mut Vec<(String, Tensor)>>,
    ) -> (Tensor, Tensor) {
        let mut rec = Recorder(record);
        self.head.forward(xs, &self.config, train, &mut rec)
    }
}
