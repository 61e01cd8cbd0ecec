//! Grid search with k-fold cross-validation over the 4-layer CNN's hyperparameters, scored by
//! negative log loss, as the original's `GridSearchCV` was meant to run.
//!
//! The original's grid was learning rate {1e-3, 1e-2} × optimizer {adam, sgd} × dropout
//! {0.25, 0.5} × dense size {512, 1024} with 3 folds, but its Keras wrapper silently ignored
//! the learning rate, the dropout and the dense size, so only the optimizer varied. Here every
//! point of the grid builds and trains its own network.

use serde::{Deserialize, Serialize};
use tch::Device;

use crate::data::{ImageSet, NUM_CLASSES};
use crate::error::{Error, Result};
use crate::models::{Cnn4Config, NetworkConfig};
use crate::train::{LrSchedule, OptimizerKind, TrainConfig, Trainer};

mod records;
mod refit;
mod report;
mod search;

pub use records::{FitRecord, SearchIdentity, Shard};
pub use refit::{refit_best, refit_best_or_saved, saved_refit, RefitResult, REFIT_FILE};
pub use report::{DivergedPoint, FitScore, GridReport, GridRow};
pub use search::{GridSearch, SearchOutcome};

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
            ..Default::default()
        }
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
    /// Print one line per fit (not part of what identifies a search).
    #[serde(skip)]
    pub verbose: bool,
}

impl GridSettings {
    /// The profile's folds, epochs per fit and CNN batch size.
    pub fn from_profile(profile: &crate::Profile) -> GridSettings {
        GridSettings {
            folds: profile.grid_folds,
            epochs: profile.grid_epochs,
            batch_size: profile.sizes(crate::models::ModelKind::Cnn4).batch_size,
            ..Default::default()
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
            verbose: true,
        }
    }
}

/// Stratified k-fold split without shuffling (scikit-learn's `StratifiedKFold`): the images of
/// each class, in order, are cut into `k` nearly equal runs, and fold `f` holds run `f` of every
/// class. Returns `(training indices, held-out indices)` per fold.
pub fn stratified_folds(labels: &[u8], k: usize) -> Result<Vec<(Vec<usize>, Vec<usize>)>> {
    if k < 2 {
        return Err(Error::param("folds", format!("{k} must be at least 2")));
    }
    let mut fold_of = vec![0usize; labels.len()];
    for class in 0..NUM_CLASSES as u8 {
        let members: Vec<usize> = (0..labels.len()).filter(|&i| labels[i] == class).collect();
        if !members.is_empty() && members.len() < k {
            return Err(Error::param(
                "folds",
                format!(
                    "class {class} has {} images, fewer than the {k} folds",
                    members.len()
                ),
            ));
        }
        for (j, &i) in members.iter().enumerate() {
            fold_of[i] = j * k / members.len();
        }
    }
    Ok((0..k)
        .map(|f| {
            let (held, kept): (Vec<usize>, Vec<usize>) =
                (0..labels.len()).partition(|&i| fold_of[i] == f);
            (kept, held)
        })
        .collect())
}

/// Trains a fresh `Cnn4` for every point of `spec` on every fold of `set` and ranks the points
/// by mean negative log loss on the held-out folds, in memory (nothing written, nothing resumed:
/// [`GridSearch`] does that).
pub fn grid_search(
    spec: &GridSpec,
    settings: &GridSettings,
    set: &ImageSet,
    device: Device,
) -> Result<GridReport> {
    let search = GridSearch::new(spec.clone(), settings.clone(), set.clone())?;
    search
        .run(None, Shard::ALL, device)?
        .report
        .ok_or_else(|| Error::NotReady {
            what: "grid search",
            message: "the search did not finish".into(),
        })
}

/// One fit: a fresh `Cnn4` with the point's dropout and dense size, trained for the settings'
/// epochs at the point's constant learning rate (no augmentation), scored on the held-out fold
/// after its last epoch. Returns `(log loss, accuracy)`.
pub fn fit_point(
    point: &GridPoint,
    optimizer: OptimizerKind,
    settings: &GridSettings,
    train: &ImageSet,
    held_out: &ImageSet,
    device: Device,
) -> Result<(f64, f64)> {
    let config = point.train_config(optimizer, settings);
    let mut trainer = Trainer::new(point.network(), config, device)?;
    trainer.fit(train, held_out)?;
    let last = trainer
        .history
        .epochs
        .last()
        .ok_or_else(|| Error::param("epochs", "must be at least 1"))?;
    Ok((last.val_loss, last.val_accuracy))
}

#[cfg(test)]
mod tests {
    use super::*;

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

    #[test]
    fn folds_are_stratified_disjoint_and_cover_the_set() {
        let labels: Vec<u8> = (0..300).map(|i| (i % 10) as u8).collect();
        let folds = stratified_folds(&labels, 3).unwrap();
        let mut seen = vec![0; labels.len()];
        for (train, held) in &folds {
            assert_eq!(train.len() + held.len(), labels.len());
            assert_eq!(held.len(), 100);
            for &i in held {
                seen[i] += 1;
                assert!(!train.contains(&i));
            }
            let mut per_class = [0; 10];
            for &i in held {
                per_class[labels[i] as usize] += 1;
            }
            assert_eq!(per_class, [10; 10], "each class split evenly");
        }
        assert!(seen.iter().all(|&c| c == 1), "each image held out once");
        assert!(stratified_folds(&labels, 1).is_err());
        assert!(stratified_folds(&[0, 0, 1], 3).is_err());
    }
}
