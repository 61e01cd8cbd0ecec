//! What a training run is told: the optimiser, the learning-rate schedule, regularisation,
//! augmentation, early stopping, checkpoints and memory layout ([`TrainConfig`]). The recipes
//! that fill it in for a network are in [`super::recipe`]; which pieces of the loop it turns on
//! is in [`super::callbacks`].

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::precision::Precision;
use super::schedule::{LrSchedule, ReduceLrOnPlateau};
use crate::augment::AugmentConfig;
use crate::error::{Error, Result};

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
    /// Label smoothing ε of the training loss: the target puts `1 - ε` on the true class and
    /// spreads `ε` evenly over all ten (0 = plain cross-entropy). Validation and test losses
    /// are always plain cross-entropy.
    pub label_smoothing: f64,
    /// Score images as the mean of the class probabilities of the image and of its mirror
    /// image (test-time flip augmentation), in validation after every epoch and, through
    /// `network.json`, in every evaluation and prediction of the saved network.
    pub test_time_flip: bool,
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
    /// Log the run for TensorBoard into this folder (`train::TensorBoardSink`): every epoch's
    /// figures, the training loss every few steps, a sample batch, the settings. A profile's run
    /// puts it beside the checkpoints, in `<checkpoints>/tensorboard`.
    pub tensorboard_dir: Option<PathBuf>,
    /// Images per forward pass when validating and evaluating ([`Recipe::config`] takes the
    /// network's own, [`crate::models::ModelSpec::eval_batch_size`]).
    pub eval_batch_size: usize,
    /// Train on the CPU with convolution kernels (and so activations) in channels-last memory
    /// order; outside `fit` and the throughput benchmark the variables keep the default order.
    /// On a 2-core CPU it made the 4-layer CNN ~20% faster and the ResNet ~3% slower
    /// (docs/performance.md), so the CNN's row turns it on and the ResNet's leaves it off.
    pub channels_last: bool,
    /// Training steps (forward pass and loss) in fp32, in bf16 under autocast, or `auto` (bf16
    /// where this machine runs it faster, see [`Precision::resolve`]); the optimiser keeps fp32
    /// weights either way, and the trainer's scores (validation, test) are computed in fp32.
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
            label_smoothing: 0.0,
            test_time_flip: false,
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
            tensorboard_dir: None,
            eval_batch_size: 1000,
            channels_last: false,
            precision: Precision::Fp32,
            validate_every_epoch: true,
        }
    }
}

impl TrainConfig {
    /// The tuned recipe: Adam at 2e-3 with decoupled weight decay 0.05 on the kernels (no L2
    /// penalty in the loss), a linear warm-up over a fifth of the run (at most one epoch) then
    /// cosine decay to 0 by the last batch, no early stopping (the best epoch is still
    /// restored), flips and shifts of 0.1 (the original ResNet augmentation without its random
    /// erasing), label smoothing 0.1, and test-time flip. What each of these buys is measured
    /// in docs/performance.md.
    pub fn tuned(epochs: usize, batch_size: usize) -> TrainConfig {
        TrainConfig {
            epochs,
            batch_size,
            learning_rate: 2e-3,
            weight_decay: 0.05,
            model_l2: false,
            label_smoothing: 0.1,
            test_time_flip: true,
            early_stopping_patience: None,
            schedule: LrSchedule::WarmupCosine {
                warmup_epochs: (0.2 * epochs as f64).min(1.0),
                min_lr: 0.0,
            },
            augment: AugmentConfig {
                erasing: None,
                ..AugmentConfig::original_resnet()
            },
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
        if !(0.0..1.0).contains(&self.label_smoothing) {
            return Err(Error::param(
                "label_smoothing",
                format!("{} must lie in [0, 1)", self.label_smoothing),
            ));
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

impl TrainConfig {
    /// The augmentation in a few words ("flip, shift 0.1×0.1", or "none").
    pub fn augmentation(&self) -> String {
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
        if augment.is_empty() {
            "none".into()
        } else {
            augment.join(", ")
        }
    }

    /// The optimiser in a few words ("Adam (beta1 0.9, …)", "SGD, momentum 0.9, Nesterov").
    pub fn optimizer_name(&self) -> String {
        match self.optimizer {
            OptimizerKind::Adam { beta1, beta2, eps } => {
                format!("Adam (beta1 {beta1}, beta2 {beta2}, eps {eps:e})")
            }
            OptimizerKind::Sgd { momentum, nesterov } => format!(
                "SGD, momentum {momentum}{}",
                if nesterov { ", Nesterov" } else { "" }
            ),
        }
    }
}

impl std::fmt::Display for TrainConfig {
    /// The settings as a few aligned lines, for notebooks and the CLI.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let optimizer = self.optimizer_name();
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
        let rows = [
            ("epochs", self.epochs.to_string()),
            ("batch size", self.batch_size.to_string()),
            ("optimizer", optimizer),
            ("learning rate", schedule),
            (
                "regularisation",
                format!(
                    "{}weight decay {}{}",
                    if self.model_l2 {
                        "the model's L2 penalties, "
                    } else {
                        ""
                    },
                    self.weight_decay,
                    if self.label_smoothing > 0.0 {
                        format!(", label smoothing {}", self.label_smoothing)
                    } else {
                        String::new()
                    }
                ),
            ),
            (
                "early stopping",
                self.early_stopping_patience.map_or("off".into(), |p| {
                    format!("after {p} epochs without improvement")
                }),
            ),
            ("augmentation", self.augmentation()),
            (
                "scoring",
                if self.test_time_flip {
                    "mean of the image and its mirror image (test-time flip)".into()
                } else {
                    "the image as it is".into()
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
