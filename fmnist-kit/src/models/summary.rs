//! Summaries like Keras's `model.summary()`: layers, output shapes, trainable parameters; and
//! the weights of a network split into trainable and frozen ones, as Keras prints them for
//! transfer learning.

use serde::Serialize;
use tch::{nn, Device, Kind, Tensor};

use super::classifier::Classifier;
use super::kind::ModelKind;
use crate::error::Result;

/// One row of a model summary.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct LayerSummary {
    pub name: String,
    /// Output shape with the batch dimension first (given as `None`, as Keras prints it).
    pub output_shape: Vec<Option<i64>>,
    pub params: i64,
}

/// A summary like Keras's `model.summary()`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ModelSummary {
    pub model: ModelKind,
    pub layers: Vec<LayerSummary>,
    pub trainable_params: i64,
}

impl std::fmt::Display for ModelSummary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "Model: {}", self.model)?;
        writeln!(
            f,
            "{:<22} {:<22} {:>12}",
            "Layer", "Output shape", "Param #"
        )?;
        writeln!(f, "{}", "=".repeat(58))?;
        for l in &self.layers {
            let shape: Vec<String> = l
                .output_shape
                .iter()
                .map(|d| d.map_or("None".to_string(), |v| v.to_string()))
                .collect();
            writeln!(
                f,
                "{:<22} {:<22} {:>12}",
                l.name,
                format!("({})", shape.join(", ")),
                l.params
            )?;
        }
        writeln!(f, "{}", "=".repeat(58))?;
        write!(f, "Trainable params: {}", self.trainable_params)
    }
}

/// Summarises `model` by running one blank image through it (in evaluation mode).
pub fn summary(model: &dyn Classifier, device: Device) -> Result<ModelSummary> {
    let x = Tensor::zeros([1, 1, 28, 28], (Kind::Float, device));
    let shapes: std::collections::HashMap<String, Vec<i64>> = tch::no_grad(|| {
        model
            .activations(&x, false)
            .into_iter()
            .map(|(n, t)| (n, t.size()))
            .collect()
    });
    let layers: Vec<LayerSummary> = model
        .layers()
        .into_iter()
        .map(|(name, params)| {
            let dims = shapes.get(&name).cloned().unwrap_or_default();
            let mut output_shape = vec![None];
            output_shape.extend(dims.iter().skip(1).map(|&d| Some(d)));
            LayerSummary {
                name,
                output_shape,
                params,
            }
        })
        .collect();
    let trainable_params = layers.iter().map(|l| l.params).sum();
    Ok(ModelSummary {
        model: model.kind(),
        layers,
        trainable_params,
    })
}

/// The weights of a network counted as Keras counts them, split by whether the optimiser
/// updates them. Batch norm's running mean and variance are neither: they are statistics the
/// forward pass keeps, not weights.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct ParameterCounts {
    /// Weights the optimiser updates (`requires_grad`).
    pub trainable: i64,
    /// Weights kept as they are (`requires_grad` off: a frozen trunk or block).
    pub frozen: i64,
}

impl ParameterCounts {
    /// Counts the weights of `vs`.
    pub fn of(vs: &nn::VarStore) -> ParameterCounts {
        let mut counts = ParameterCounts {
            trainable: 0,
            frozen: 0,
        };
        for (name, v) in vs.variables() {
            if name.ends_with("running_mean") || name.ends_with("running_var") {
                continue;
            }
            let n = v.numel() as i64;
            if v.requires_grad() {
                counts.trainable += n;
            } else {
                counts.frozen += n;
            }
        }
        counts
    }

    /// All weights, trainable and frozen.
    pub fn total(&self) -> i64 {
        self.trainable + self.frozen
    }
}

impl std::fmt::Display for ParameterCounts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Total params: {}, trainable: {}, frozen: {}",
            self.total(),
            self.trainable,
            self.frozen
        )
    }
}
