//! The original project's 4-layer CNN: four 3×3 "same" convolutions (32, 68, 128, 256
//! filters), each followed by ReLU, batch normalisation and 2×2 max pooling; then dense 512 and
//! 256 (L2 0.01 on their kernels, ReLU, dropout 0.5) and a 10-way output. 660,054 trainable
//! parameters at its defaults. Input `[N, 1, 28, 28]` (floats in 0..1), logits `[N, 10]`.

use serde::{Deserialize, Serialize};
use tch::nn::{self, ModuleT};
use tch::Tensor;

use super::classifier::Classifier;
use super::kind::ModelKind;
use super::layers::{bn_params, conv_params, glorot_uniform, keras_bn, linear_params, Recorder};
use crate::error::{Error, Result};

/// Non-linearity of the CNN's hidden layers.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub enum Activation {
    Relu,
    /// Leaky ReLU with the given negative slope.
    LeakyRelu(f64),
    Elu,
}

impl Activation {
    /// Applies the activation.
    pub fn apply(&self, x: &Tensor) -> Tensor {
        match *self {
            Activation::Relu => x.relu(),
            Activation::LeakyRelu(slope) => x.maximum(&(x * slope)),
            Activation::Elu => x.elu(),
        }
    }
}

/// A network of the kit: a `ModuleT` that also names its layers, reports its L2 penalty and

/// Settings of [`Cnn4`]; the defaults are the original's.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Cnn4Config {
    /// Filters of the four convolutions.
    pub filters: [i64; 4],
    /// Sizes of the hidden dense layers.
    pub dense: Vec<i64>,
    /// Dropout after each hidden dense layer.
    pub dropout: f64,
    pub activation: Activation,
    /// L2 coefficient on the hidden dense kernels (Keras `l2(0.01)`).
    pub dense_l2: f64,
}

impl Default for Cnn4Config {
    fn default() -> Self {
        Cnn4Config {
            filters: [32, 68, 128, 256],
            dense: vec![512, 256],
            dropout: 0.5,
            activation: Activation::Relu,
            dense_l2: 0.01,
        }
    }
}

/// The original project's 4-layer CNN. Input `[N, 1, 28, 28]`, logits `[N, 10]`.
#[derive(Debug)]
pub struct Cnn4 {
    convs: Vec<nn::Conv2D>,
    norms: Vec<nn::BatchNorm>,
    dense: Vec<nn::Linear>,
    output: nn::Linear,
    pub config: Cnn4Config,
}

impl Cnn4 {
    /// Creates the network's variables under `vs`.
    pub fn new(vs: &nn::Path, config: &Cnn4Config) -> Result<Cnn4> {
        if config.filters.iter().any(|&f| f < 1) || config.dense.iter().any(|&d| d < 1) {
            return Err(Error::param(
                "config",
                "filters and dense sizes must be positive",
            ));
        }
        if !(0.0..1.0).contains(&config.dropout) {
            return Err(Error::param(
                "dropout",
                format!("{} is not in [0, 1)", config.dropout),
            ));
        }
        let mut convs = Vec::new();
        let mut norms = Vec::new();
        let mut c_in = 1;
        for (i, &f) in config.filters.iter().enumerate() {
            convs.push(nn::conv2d(
                vs / format!("conv{}", i + 1),
                c_in,
                f,
                3,
                nn::ConvConfig {
                    padding: 1,
                    ws_init: glorot_uniform(c_in * 9, f * 9),
                    ..Default::default()
                },
            ));
            norms.push(keras_bn(vs / format!("bn{}", i + 1), f));
            c_in = f;
        }
        // 28 → 14 → 7 → 3 → 1 after four 2×2 poolings (floor, as Keras's "valid" pooling).
        let mut side = 28;
        for _ in 0..4 {
            side /= 2;
        }
        let mut d_in = c_in * side * side;
        let mut dense = Vec::new();
        for (i, &d) in config.dense.iter().enumerate() {
            dense.push(nn::linear(
                vs / format!("dense{}", i + 1),
                d_in,
                d,
                nn::LinearConfig {
                    ws_init: glorot_uniform(d_in, d),
                    bs_init: Some(nn::Init::Const(0.0)),
                    bias: true,
                },
            ));
            d_in = d;
        }
        let output = nn::linear(
            vs / "output",
            d_in,
            10,
            nn::LinearConfig {
                ws_init: glorot_uniform(d_in, 10),
                bs_init: Some(nn::Init::Const(0.0)),
                bias: true,
            },
        );
        Ok(Cnn4 {
            convs,
            norms,
            dense,
            output,
            config: config.clone(),
        })
    }
}

impl ModuleT for Cnn4 {
    fn forward_t(&self, xs: &Tensor, train: bool) -> Tensor {
        self.run(xs, train, None).1
    }
}

impl Classifier for Cnn4 {
    fn kind(&self) -> ModelKind {
        ModelKind::Cnn4
    }

    fn l2_kernels(&self) -> Vec<(Tensor, f64)> {
        self.dense
            .iter()
            .map(|d| (d.ws.shallow_clone(), self.config.dense_l2))
            .collect()
    }

    fn layers(&self) -> Vec<(String, i64)> {
        let mut v = Vec::new();
        for (i, (c, b)) in self.convs.iter().zip(&self.norms).enumerate() {
            let n = i + 1;
            v.push((format!("conv{n}"), conv_params(c)));
            v.push((format!("act{n}"), 0));
            v.push((format!("bn{n}"), bn_params(b)));
            v.push((format!("pool{n}"), 0));
        }
        for (i, d) in self.dense.iter().enumerate() {
            v.push((format!("dense{}", i + 1), linear_params(d)));
        }
        v.push(("output".into(), linear_params(&self.output)));
        v
    }

    fn run(
        &self,
        xs: &Tensor,
        train: bool,
        record: Option<&mut Vec<(String, Tensor)>>,
    ) -> (Tensor, Tensor) {
        let mut rec = Recorder(record);
        let mut x = xs.shallow_clone();
        for (i, (conv, bn)) in self.convs.iter().zip(&self.norms).enumerate() {
            let n = i + 1;
            x = x.apply(conv);
            rec.keep(format!("conv{n}"), &x);
            x = self.config.activation.apply(&x);
            rec.keep(format!("act{n}"), &x);
            x = x.apply_t(bn, train);
            rec.keep(format!("bn{n}"), &x);
            x = x.max_pool2d_default(2);
            rec.keep(format!("pool{n}"), &x);
        }
        x = x.flatten(1, -1);
        for (i, d) in self.dense.iter().enumerate() {
            x = self.config.activation.apply(&x.apply(d));
            rec.keep(format!("dense{}", i + 1), &x);
            x = x.dropout(self.config.dropout, train);
        }
        let logits = x.apply(&self.output);
        rec.keep("output", &logits);
        (x, logits)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::{Device, Kind};

    #[test]
    fn l2_penalty_matches_its_definition() {
        let vs = nn::VarStore::new(Device::Cpu);
        let m = Cnn4::new(&vs.root(), &Cnn4Config::default()).unwrap();
        let expected: f64 = m
            .dense
            .iter()
            .map(|d| d.ws.square().sum(Kind::Double).double_value(&[]) * 0.01)
            .sum();
        assert!((m.l2_penalty().double_value(&[]) - expected).abs() < 1e-4 * expected.max(1.0));
        assert!(Cnn4::new(
            &vs.root(),
            &Cnn4Config {
                dropout: 1.0,
                ..Default::default()
            }
        )
        .is_err());
    }
}
