//! What a grid search tries: the values of each hyperparameter ([`GridSpec`]), one point of
//! the grid ([`GridPoint`]: the network and the training it builds), and how every point is
//! trained and scored ([`GridSettings`]).

use serde::{Deserialize, Serialize};

use crate::models::{Cnn4Config, ModelKind, NetworkConfig};
use crate::tensorboard::HParam;
use crate::train::{LrSchedule, OptimizerKind, Precision, TrainConfig};

/// The values to try for each hyperparameter.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GridSpec {
    pub learning_rates: Vec<f64>,
    /// `(name, optimizer)`.
    pub optimizers: Vec<(String, OptimizerKind)>,
    pub dropouts: Vec<f64>,
    /// Size of the first hidden dense layer (the second stays at 256).
    pub dense_sizes: Vec<i64>,
}

impl Default for GridSpec {
    /// The original's grid: 16 points. "sgd" is Keras's plain SGD (no momentum).
    fn default() -> Self {
        GridSpec {
            learning_rates: vec![1e-3, 1e-2],
            optimizers: vec![
                ("adam".into(), OptimizerKind::adam()),
                (
                    "sgd".into(),
                    OptimizerKind::Sgd {
                        momentum: 0.0,
                        nesterov: false,
                    },
                ),
            ],
            dropouts: vec![0.25, 0.5],
            dense_sizes: vec![512, 1024],
        }
    }
}

/// One point of the grid.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GridPoint {
    pub learning_rate: f64,
    pub optimizer: String,
    pub dropout: f64,
    pub dense: i64,
}

impl GridPoint {
    /// The network of this point: the CNN with its dropout and first dense size.
    pub fn network(&self) -> NetworkConfig {
        NetworkConfig::Cnn4(Cnn4Config {
            dense: vec![self.dense, 256],
            dropout: self.dropout,
            ..Default::default()
        })
    }

    /// How this point trains: its optimiser at its constant learning rate, the settings'
    /// epochs and batch size, no augmentation, no early stopping.
    pub fn train_config(&self, optimizer: OptimizerKind, settings: &GridSettings) -> TrainConfig {
        TrainConfig {
            epochs: settings.epochs,
            batch_size: settings.batch_size,
            optimizer,
            learning_rate: self.learning_rate,
            schedule: LrSchedule::Constant,
            early_stopping_patience: None,
            restore_best: false,
            augment: Default::default(),
            seed: settings.seed,
            verbose: false,
            channels_last: true,
            // A fit is scored after its last epoch only: skipping the other epochs' validation
            // trains the same weights in less time.
            validate_every_epoch: false,
            precision: settings.precision,
            ..Default::default()
        }
    }
}

impl GridPoint {
    /// A folder name for the point: `lr-0.001_adam_dropout-0.3_dense-256`.
    pub fn slug(&self) -> String {
        format!(
            "lr-{}_{}_dropout-{}_dense-{}",
            self.learning_rate,
            self.optimizer.to_lowercase(),
            self.dropout,
            self.dense
        )
    }

    /// The point's settings as TensorBoard hyperparameters.
    pub fn hparams(&self) -> Vec<(String, HParam)> {
        vec![
            ("learning_rate".into(), HParam::Number(self.learning_rate)),
            ("optimizer".into(), HParam::Text(self.optimizer.clone())),
            ("dropout".into(), HParam::Number(self.dropout)),
            ("dense".into(), HParam::Number(self.dense as f64)),
        ]
    }
}

impl std::fmt::Display for GridPoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "lr {:e}, {}, dropout {}, dense {}",
            self.learning_rate, self.optimizer, self.dropout, self.dense
        )
    }
}

impl GridSpec {
    /// Every combination, learning rate varying slowest and dense size fastest.
    pub fn points(&self) -> Vec<(GridPoint, OptimizerKind)> {
        let mut out = Vec::new();
        for &learning_rate in &self.learning_rates {
            for (name, opt) in &self.optimizers {
                for &dropout in &self.dropouts {
                    for &dense in &self.dense_sizes {
                        out.push((
                            GridPoint {
                                learning_rate,
                                optimizer: name.clone(),
                                dropout,
                                dense,
                            },
                            *opt,
                        ));
                    }
                }
            }
        }
        out
    }
}

/// How each point is trained and scored.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GridSettings {
    pub folds: usize,
    /// Epochs per fit, at a constant learning rate (the point's).
    pub epochs: usize,
    pub batch_size: usize,
    pub seed: u64,
    /// Precision of the fits' training steps: fp32 or bf16 as resolved where the settings were
    /// made, never `auto`, because it is part of what identifies a search (the scores are
    /// computed in fp32 either way). Records written before it existed were fp32.
    #[serde(default)]
    pub precision: Precision,
    /// Print one line per fit (not part of what identifies a search).
    #[serde(skip)]
    pub verbose: bool,
    /// Log every fit for TensorBoard, in `<dir>/tensorboard/<point>/fold-<k>`, and each point
    /// as a session of the HParams view (not part of what identifies a search) [default: true].
    #[serde(skip)]
    pub tensorboard: bool,
}

impl GridSettings {
    /// The profile's folds, epochs per fit, CNN batch size and training precision (`auto`
    /// resolved for the GPU when there is one, else this CPU).
    pub fn from_profile(profile: &crate::Profile) -> GridSettings {
        GridSettings {
            folds: profile.grid_folds,
            epochs: profile.grid_epochs,
            batch_size: profile.sizes(ModelKind::Cnn4).batch_size,
            ..Default::default()
        }
        .with_precision(profile.precision, tch::Device::cuda_if_available())
    }

    /// These settings with `precision` resolved for the CNN on `device` (`auto` becomes fp32
    /// or bf16, as a trainer resolves it).
    pub fn with_precision(self, precision: Precision, device: tch::Device) -> GridSettings {
        let bf16 = precision.resolve_for(ModelKind::Cnn4, device).0;
        GridSettings {
            precision: if bf16 {
                Precision::Bf16
            } else {
                Precision::Fp32
            },
            ..self
        }
    }
}

impl Default for GridSettings {
    fn default() -> Self {
        GridSettings {
            folds: 3,
            epochs: 2,
            batch_size: 256,
            seed: 13,
            precision: Precision::Fp32,
            verbose: true,
            tensorboard: true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_grids_precision_is_resolved_recorded_and_trained_in() {
        for name in [
            crate::ProfileName::Smoke,
            crate::ProfileName::Quick,
            crate::ProfileName::Full,
        ] {
            let profile = crate::Profile::named(name);
            let settings = GridSettings::from_profile(&profile);
            assert_ne!(
                settings.precision,
                Precision::Auto,
                "{name}: auto is resolved"
            );
            if profile.precision == Precision::Fp32 {
                assert_eq!(settings.precision, Precision::Fp32, "{name}");
            }
            let (point, optimizer) = GridSpec::default().points().remove(0);
            assert_eq!(
                point.train_config(optimizer, &settings).precision,
                settings.precision
            );
        }
        let bf16 = GridSettings::default().with_precision(Precision::Bf16, tch::Device::Cpu);
        assert_eq!(bf16.precision, Precision::Bf16);
        // Settings recorded before the field existed were trained in fp32.
        let old: GridSettings =
            serde_json::from_str(r#"{"folds": 3, "epochs": 2, "batch_size": 128, "seed": 13}"#)
                .unwrap();
        assert_eq!(old.precision, Precision::Fp32);
    }

    #[test]
    fn the_original_grid_has_sixteen_distinct_points() {
        let points = GridSpec::default().points();
        assert_eq!(points.len(), 16);
        for (i, a) in points.iter().enumerate() {
            for b in &points[i + 1..] {
                assert_ne!(a.0, b.0);
            }
        }
    }
}
