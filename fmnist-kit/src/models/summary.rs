//! Summaries like Keras's `model.summary()`: layers, output shapes, trainable parameters.

use serde::Serialize;
use tch::{Device, Kind, Tensor};

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
