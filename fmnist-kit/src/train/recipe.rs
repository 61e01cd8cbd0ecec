//! The recipes: which settings a run uses, the original project's or tuned ones ([`Recipe`]),
//! for training a network from scratch ([`Recipe::config`]) and for the two stages of a
//! transfer run ([`Recipe::head_config`], [`Recipe::fine_tune_config`]).

use serde::{Deserialize, Serialize};

use super::config::{OptimizerKind, TrainConfig};
use super::precision::Precision;
use super::schedule::{LrSchedule, ReduceLrOnPlateau};
use crate::augment::AugmentConfig;
use crate::models::{Backbone, ModelKind};

/// Which settings a training run uses: the original project's, or better ones. For a transfer
/// run: the original's stage 2 is SGD 1e-3, momentum 0.9, Nesterov, at a constant rate; the
/// tuned one Adam with a short warm-up and a cosine decay and decoupled weight decay; both with
/// the ResNet's augmentation, and the same stage 1.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "cli", derive(clap::ValueEnum))]
pub enum Recipe {
    /// The original's intended settings: Adam 1e-3, the L2 penalties, reduce-LR on plateau and
    /// the augmentation of the network's row of [`crate::models::MODELS`], early stopping.
    Original,
    /// Settings tuned here ([`TrainConfig::tuned`]): Adam with decoupled weight decay on the
    /// kernels instead of the L2 penalties, a short warm-up then cosine decay over the whole
    /// run, flips and shifts of 0.1 (no brightness change, no random erasing), label smoothing
    /// 0.1 and test-time flip.
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

impl Recipe {
    /// Stage 1 of a transfer run: the head on cached trunk features (no augmentation: the
    /// features are fixed), Adam 1e-3 at a constant rate, the best epoch kept, quiet.
    pub fn head_config(self, epochs: usize, seed: u64) -> TrainConfig {
        TrainConfig {
            epochs,
            batch_size: 128,
            optimizer: OptimizerKind::adam(),
            learning_rate: 1e-3,
            weight_decay: 0.0,
            model_l2: false,
            label_smoothing: 0.0,
            test_time_flip: false,
            early_stopping_patience: None,
            schedule: LrSchedule::Constant,
            restore_best: true,
            augment: AugmentConfig::default(),
            seed,
            progress_seconds: 0.0,
            verbose: false,
            checkpoint_dir: None,
            tensorboard_dir: None,
            eval_batch_size: 4096,
            channels_last: false,
            precision: Precision::Fp32,
            validate_every_epoch: true,
        }
    }

    /// Stage 2 of a transfer run: fine-tuning `backbone` + head on augmented images.
    pub fn fine_tune_config(
        self,
        backbone: Backbone,
        epochs: usize,
        batch_size: usize,
        seed: u64,
    ) -> TrainConfig {
        let base = TrainConfig {
            epochs,
            batch_size,
            model_l2: false,
            early_stopping_patience: None,
            restore_best: true,
            augment: AugmentConfig::original_resnet(),
            seed,
            channels_last: true,
            eval_batch_size: ModelKind::for_backbone(backbone).spec().eval_batch_size,
            ..Default::default()
        };
        match self {
            Recipe::Original => TrainConfig {
                optimizer: OptimizerKind::sgd_nesterov(),
                learning_rate: 1e-3,
                schedule: LrSchedule::Constant,
                ..base
            },
            Recipe::Tuned => TrainConfig {
                optimizer: OptimizerKind::adam(),
                learning_rate: 5e-4,
                weight_decay: 0.05,
                schedule: LrSchedule::WarmupCosine {
                    warmup_epochs: 0.25,
                    min_lr: 0.0,
                },
                ..base
            },
        }
    }

    /// A transfer network trained from random weights (the few-label comparison's "from
    /// scratch"): the tuned recipe for networks trained from scratch (Adam 2e-3, warm-up then
    /// cosine, weight decay 0.05) with the fine-tuning's augmentation, quiet.
    pub fn scratch_config(
        self,
        backbone: Backbone,
        epochs: usize,
        batch_size: usize,
        seed: u64,
    ) -> TrainConfig {
        TrainConfig {
            optimizer: OptimizerKind::adam(),
            learning_rate: 2e-3,
            weight_decay: 0.05,
            schedule: LrSchedule::WarmupCosine {
                warmup_epochs: 1.0,
                min_lr: 0.0,
            },
            verbose: false,
            ..Recipe::Tuned.fine_tune_config(backbone, epochs, batch_size, seed)
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
            text.contains("cosine decay")
                && text.contains("label smoothing 0.1")
                && text.contains("test-time flip")
                && !text.contains("brightness")
                && !text.contains("erasing"),
            "{text}"
        );
        // A fifth of the run warms up, at most one epoch.
        for (epochs, warmup) in [(1, 0.2), (6, 1.0), (50, 1.0)] {
            assert_eq!(
                Recipe::Tuned.config(ModelKind::ResNet, epochs, 64).schedule,
                LrSchedule::WarmupCosine {
                    warmup_epochs: warmup,
                    min_lr: 0.0
                }
            );
        }
        assert!(
            tuned.channels_last && !Recipe::Tuned.config(ModelKind::ResNet, 1, 32).channels_last
        );
        assert_eq!(Recipe::Tuned.to_string(), "tuned");
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
