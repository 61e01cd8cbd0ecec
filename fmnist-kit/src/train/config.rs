//! What a training run is told: the optimiser, the learning-rate schedule, regularisation,
//! augmentation, early stopping, checkpoints and memory layout ([`TrainConfig`]), and the two
//! [`Recipe`]s that fill it in for a network: the original project's settings and tuned ones.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::precision::Precision;
use crate::augment::AugmentConfig;
use crate::error::{Error, Result};
use crate::models::ModelKind;

/// The optimiser and its settings.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub enum OptimizerKind {
    /// Adam (Keras's defaults: beta1 0.9, beta2 0.999, epsilon 1e-7).
    Adam { beta1: f64, beta2: f64, eps: f64 },
    /// SGD with momentum, optionally Nesterov's.
    Sgd { momentum: f64, nesterov: bool },
}

impl OptimizerKind {
    /// Adam with Keras's defaults.
    pub fn adam() -> OptimizerKind {
        OptimizerKind::Adam {
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-7,
        }
    }

    /// SGD with momentum 0.9 and Nesterov's correction.
    pub fn sgd_nesterov() -> OptimizerKind {
        OptimizerKind::Sgd {
            momentum: 0.9,
            nesterov: true,
        }
    }
}

/// Reduce the learning rate when the validation loss stops improving (Keras `ReduceLROnPlateau`).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct ReduceLrOnPlateau {
    pub factor: f64,
    /// Epochs without improvement before reducing.
    pub patience: usize,
    pub min_lr: f64,
}

/// How the learning rate changes during a run.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub enum LrSchedule {
    /// The configured rate throughout.
    Constant,
    /// Keras's `ReduceLROnPlateau`, checked after every epoch.
    ReduceOnPlateau(ReduceLrOnPlateau),
    /// A linear warm-up from near 0 over `warmup_epochs`, then a half cosine down to `min_lr`
    /// at the end of the last epoch; updated after every batch.
    WarmupCosine { warmup_epochs: f64, min_lr: f64 },
}

impl LrSchedule {
    /// The rate after `step` of `total_steps` optimiser steps (1-based), for a base rate `base`.
    pub fn rate_at(&self, base: f64, step: i64, steps_per_epoch: usize, total_steps: i64) -> f64 {
        match *self {
            LrSchedule::WarmupCosine {
                warmup_epochs,
                min_lr,
            } => {
                let warmup = (warmup_epochs * steps_per_epoch as f64).round() as i64;
                if step <= warmup {
                    return base * step as f64 / warmup.max(1) as f64;
                }
                let span = (total_steps - warmup).max(1) as f64;
                let t = ((step - warmup) as f64 / span).clamp(0.0, 1.0);
                min_lr + 0.5 * (base - min_lr) * (1.0 + (std::f64::consts::PI * t).cos())
            }
            LrSchedule::Constant | LrSchedule::ReduceOnPlateau(_) => base,
        }
    }
}

/// Everything about a training run except the data.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct TrainConfig {
    pub epochs: usize,
    pub batch_size: usize,
    pub optimizer: OptimizerKind,
    pub learning_rate: f64,
    /// Decoupled weight decay (AdamW style) on the kernels (variables of rank 2 or more; not
    /// biases nor batch-norm scales), on top of the model's own L2 penalty.
    pub weight_decay: f64,
    /// Apply the model's L2 penalty `c · Σ w²` (the original's `kernel_regularizer`s). Its
    /// gradient `2 · c · w` is added inside the optimiser step, which trains exactly as adding
    /// the penalty to the loss but saves two passes over the weights; the reported losses are
    /// the data losses.
    pub model_l2: bool,
    /// Stop after this many epochs without a better validation loss.
    pub early_stopping_patience: Option<usize>,
    pub schedule: LrSchedule,
    /// Load the best epoch's weights when training ends.
    pub restore_best: bool,
    pub augment: AugmentConfig,
    pub seed: u64,
    /// Print a progress line at most this often within an epoch (seconds); 0 = never.
    pub progress_seconds: f64,
    /// Print one line per epoch.
    pub verbose: bool,
    /// Write `last.safetensors`, `best.safetensors`, `optimizer.safetensors`, `state.json`
    /// and `history.json` here after every epoch.
    pub checkpoint_dir: Option<PathBuf>,
    /// Images per forward pass when validating and evaluating ([`Recipe::config`] takes the
    /// network's own, [`crate::models::ModelSpec::eval_batch_size`]).
    pub eval_batch_size: usize,
    /// Train on the CPU with convolution kernels (and so activations) in channels-last memory
    /// order; outside `fit` and `measure_throughput` the variables keep the default order.
    /// On the 2-core CPU of DESIGN.md it made the 4-layer CNN ~20% faster and the ResNet ~3%
    /// slower, so the CNN's settings turn it on and the ResNet's leave it off.
    pub channels_last: bool,
    /// Forward passes in fp32, in bf16 under autocast, or `auto` (bf16 on CUDA and on CPUs with
    /// AMX, see [`Precision::resolve`]); the optimiser keeps fp32 weights either way.
    pub precision: Precision,
    /// Score the validation set after every epoch (the default), or only after the last one,
    /// as a grid-search fit needs: training is the same either way (each epoch's shuffle,
    /// augmentation and dropout derive from the seed and the epoch), and the other epochs'
    /// validation figures are then NaN. Only without what reads every epoch's validation loss:
    /// early stopping, reduce-on-plateau, `restore_best` and a checkpoint folder.
    pub validate_every_epoch: bool,
}

impl Default for TrainConfig {
    fn default() -> Self {
        TrainConfig {
            epochs: 10,
            batch_size: 256,
            optimizer: OptimizerKind::adam(),
            learning_rate: 1e-3,
            weight_decay: 0.0,
            model_l2: true,
            early_stopping_patience: Some(5),
            schedule: LrSchedule::ReduceOnPlateau(ReduceLrOnPlateau {
                factor: 0.2,
                patience: 3,
                min_lr: 1e-5,
            }),
            restore_best: true,
            augment: AugmentConfig::default(),
            seed: 13,
            progress_seconds: 20.0,
            verbose: true,
            checkpoint_dir: None,
            eval_batch_size: 1000,
            channels_last: false,
            precision: Precision::Fp32,
            validate_every_epoch: true,
        }
    }
}

impl TrainConfig {
    /// The tuned recipe: Adam at 2e-3 with decoupled weight decay 0.05 on the kernels (no L2
    /// penalty in the loss), a one-epoch linear warm-up then cosine decay to 0 by the last
    /// batch, no early stopping (the best epoch is still restored), and the original's ResNet
    /// augmentation (flip, shifts of 0.1, random erasing) for both networks.
    pub fn tuned(epochs: usize, batch_size: usize) -> TrainConfig {
        TrainConfig {
            epochs,
            batch_size,
            learning_rate: 2e-3,
            weight_decay: 0.05,
            model_l2: false,
            early_stopping_patience: None,
            schedule: LrSchedule::WarmupCosine {
                warmup_epochs: 1.0,
                min_lr: 0.0,
            },
            augment: AugmentConfig::original_resnet(),
            ..Default::default()
        }
    }

    /// Checks the settings: a positive batch size and learning rate, a sensible schedule.
    pub fn validate(&self) -> Result<()> {
        if self.batch_size == 0 || self.eval_batch_size == 0 {
            return Err(Error::param("batch_size", "must be at least 1"));
        }
        if !(self.learning_rate > 0.0 && self.learning_rate.is_finite()) {
            return Err(Error::param(
                "learning_rate",
                format!("{} must be positive", self.learning_rate),
            ));
        }
        if let LrSchedule::WarmupCosine {
            warmup_epochs,
            min_lr,
        } = self.schedule
        {
            if !(warmup_epochs >= 0.0 && warmup_epochs.is_finite()) {
                return Err(Error::param(
                    "schedule.warmup_epochs",
                    format!("{warmup_epochs} must be a finite number >= 0"),
                ));
            }
            if !(min_lr >= 0.0 && min_lr <= self.learning_rate) {
                return Err(Error::param(
                    "schedule.min_lr",
                    format!(
                        "{min_lr} must lie between 0 and the learning rate {}",
                        self.learning_rate
                    ),
                ));
            }
        }
        if self.weight_decay < 0.0 {
            return Err(Error::param("weight_decay", "must not be negative"));
        }
        if !self.validate_every_epoch {
            let reads_every_epoch = [
                (self.early_stopping_patience.is_some(), "early stopping"),
                (
                    matches!(self.schedule, LrSchedule::ReduceOnPlateau(_)),
                    "reduce-on-plateau",
                ),
                (self.restore_best, "restore_best"),
                (self.checkpoint_dir.is_some(), "a checkpoint folder"),
            ];
            if let Some((_, what)) = reads_every_epoch.iter().find(|(on, _)| *on) {
                return Err(Error::param(
                    "validate_every_epoch",
                    format!("false needs every epoch's validation loss off, but {what} reads it"),
                ));
            }
        }
        Ok(())
    }
}

/// Which settings a training run uses: the original project's, or better ones.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Recipe {
    /// The original's intended settings: Adam 1e-3, the L2 penalties, reduce-LR on plateau and
    /// the augmentation of the network's row of [`crate::models::MODELS`], early stopping.
    Original,
    /// Settings tuned here ([`TrainConfig::tuned`]): Adam with decoupled weight decay on the
    /// kernels instead of the L2 penalties, one warm-up epoch then cosine decay over the whole
    /// run, flips, shifts of 0.1 and random erasing (no brightness change).
    Tuned,
}

impl Recipe {
    /// The settings of this recipe for `kind`, from its row of [`crate::models::MODELS`].
    pub fn config(self, kind: ModelKind, epochs: usize, batch_size: usize) -> TrainConfig {
        let spec = kind.spec();
        match self {
            Recipe::Original => {
                let o = spec.original;
                TrainConfig {
                    epochs,
                    batch_size,
                    schedule: LrSchedule::ReduceOnPlateau(ReduceLrOnPlateau {
                        factor: o.plateau_factor,
                        patience: o.plateau_patience,
                        min_lr: o.plateau_min_lr,
                    }),
                    augment: (o.augment)(),
                    channels_last: spec.channels_last,
                    eval_batch_size: spec.eval_batch_size,
                    ..Default::default()
                }
            }
            Recipe::Tuned => TrainConfig {
                channels_last: spec.channels_last,
                eval_batch_size: spec.eval_batch_size,
                ..TrainConfig::tuned(epochs, batch_size)
            },
        }
    }
}

impl std::fmt::Display for Recipe {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Recipe::Original => "original",
            Recipe::Tuned => "tuned",
        })
    }
}

impl std::str::FromStr for Recipe {
    type Err = Error;
    fn from_str(s: &str) -> Result<Recipe> {
        match s {
            "original" => Ok(Recipe::Original),
            "tuned" => Ok(Recipe::Tuned),
            other => Err(Error::param(
                "recipe",
                format!("{other:?} is not one of original, tuned"),
            )),
        }
    }
}

impl std::fmt::Display for TrainConfig {
    /// The settings as a few aligned lines, for notebooks and the CLI.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let optimizer = match self.optimizer {
            OptimizerKind::Adam { beta1, beta2, eps } => {
                format!("Adam (beta1 {beta1}, beta2 {beta2}, eps {eps:e})")
            }
            OptimizerKind::Sgd { momentum, nesterov } => format!(
                "SGD, momentum {momentum}{}",
                if nesterov { ", Nesterov" } else { "" }
            ),
        };
        let schedule = match self.schedule {
            LrSchedule::Constant => format!("{:e}, constant", self.learning_rate),
            LrSchedule::ReduceOnPlateau(r) => format!(
                "{:e}, ×{} after {} epochs without a better validation loss (floor {:e})",
                self.learning_rate, r.factor, r.patience, r.min_lr
            ),
            LrSchedule::WarmupCosine {
                warmup_epochs,
                min_lr,
            } => format!(
                "warm-up to {:e} over {warmup_epochs} epoch(s), then cosine decay to {}",
                self.learning_rate,
                if min_lr == 0.0 {
                    "0".to_string()
                } else {
                    format!("{min_lr:e}")
                }
            ),
        };
        let a = &self.augment;
        let mut augment = Vec::new();
        if a.horizontal_flip {
            augment.push("flip".to_string());
        }
        if a.width_shift > 0.0 || a.height_shift > 0.0 {
            augment.push(format!("shift {}×{}", a.width_shift, a.height_shift));
        }
        if a.zoom > 0.0 {
            augment.push(format!("zoom {}", a.zoom));
        }
        if let Some((lo, hi)) = a.brightness {
            augment.push(format!("brightness {lo}–{hi}"));
        }
        if let Some(e) = &a.erasing {
            augment.push(format!(
                "random erasing p {} area {}–{}",
                e.p, e.area.0, e.area.1
            ));
        }
        let rows = [
            ("epochs", self.epochs.to_string()),
            ("batch size", self.batch_size.to_string()),
            ("optimizer", optimizer),
            ("learning rate", schedule),
            (
                "regularisation",
                format!(
                    "{}weight decay {}",
                    if self.model_l2 {
                        "the model's L2 penalties, "
                    } else {
                        ""
                    },
                    self.weight_decay
                ),
            ),
            (
                "early stopping",
                self.early_stopping_patience.map_or("off".into(), |p| {
                    format!("after {p} epochs without improvement")
                }),
            ),
            (
                "augmentation",
                if augment.is_empty() {
                    "none".into()
                } else {
                    augment.join(", ")
                },
            ),
            ("precision", self.precision.to_string()),
            (
                "memory layout",
                if self.channels_last {
                    "channels-last on the CPU".into()
                } else {
                    "default".into()
                },
            ),
        ];
        for (i, (k, v)) in rows.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{k:<15} {v}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recipes_differ_as_documented() {
        let original = Recipe::Original.config(ModelKind::Cnn4, 50, 256);
        let tuned = Recipe::Tuned.config(ModelKind::Cnn4, 50, 256);
        let text = original.to_string();
        assert!(text.contains("×0.2 after 2 epochs") && text.contains("brightness 0.5–1.5"));
        let text = tuned.to_string();
        assert!(
            text.contains("cosine decay") && !text.contains("brightness"),
            "{text}"
        );
        assert!(
            tuned.channels_last && !Recipe::Tuned.config(ModelKind::ResNet, 1, 32).channels_last
        );
        assert_eq!("tuned".parse::<Recipe>().unwrap(), Recipe::Tuned);
        assert!("fancy".parse::<Recipe>().is_err());
        // The schedule: linear warm-up, then half a cosine that ends at min_lr.
        let s = LrSchedule::WarmupCosine {
            warmup_epochs: 1.0,
            min_lr: 0.0,
        };
        assert!((s.rate_at(2e-3, 5, 10, 100) - 1e-3).abs() < 1e-12);
        assert!((s.rate_at(2e-3, 10, 10, 100) - 2e-3).abs() < 1e-12);
        assert!((s.rate_at(2e-3, 55, 10, 100) - 1e-3).abs() < 1e-12);
        assert!(s.rate_at(2e-3, 100, 10, 100).abs() < 1e-12);
        let bad = TrainConfig {
            schedule: LrSchedule::WarmupCosine {
                warmup_epochs: 1.0,
                min_lr: 1.0,
            },
            ..Default::default()
        };
        assert!(bad.validate().is_err());
    }
}
