//! Grid search with k-fold cross-validation over the 4-layer CNN's hyperparameters, scored by
//! negative log loss, as the original's `GridSearchCV` was meant to run.
//!
//! The original's grid was learning rate {1e-3, 1e-2} × optimizer {adam, sgd} × dropout
//! {0.25, 0.5} × dense size {512, 1024} with 3 folds, but its Keras wrapper silently ignored
//! the learning rate, the dropout and the dense size, so only the optimizer varied. Here every
//! point of the grid builds and trains its own network.

use serde::Serialize;
use tch::{nn, Device};

use crate::data::{ImageSet, NUM_CLASSES};
use crate::error::{Error, Result};
use crate::models::{Cnn4, Cnn4Config};
use crate::train::{LrSchedule, OptimizerKind, TrainConfig, Trainer};

/// The values to try for each hyperparameter.
#[derive(Clone, Debug, PartialEq, Serialize)]
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
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct GridPoint {
    pub learning_rate: f64,
    pub optimizer: String,
    pub dropout: f64,
    pub dense: i64,
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
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct GridSettings {
    pub folds: usize,
    /// Epochs per fit, at a constant learning rate (the point's).
    pub epochs: usize,
    pub batch_size: usize,
    pub seed: u64,
    /// Print one line per point.
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

/// The cross-validated scores of one point.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct GridRow {
    pub point: GridPoint,
    /// Log loss on each held-out fold.
    pub fold_log_loss: Vec<f64>,
    pub fold_accuracy: Vec<f64>,
    /// Mean of `-log loss` over the folds (scikit-learn's `neg_log_loss`; higher is better).
    pub mean_score: f64,
    /// Population standard deviation of the fold scores (as scikit-learn's `std_test_score`).
    pub std_score: f64,
    pub mean_accuracy: f64,
    /// Training and scoring time of all folds.
    pub seconds: f64,
}

/// Every point's scores, best first.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct GridReport {
    pub rows: Vec<GridRow>,
    pub settings: GridSettings,
    pub images: usize,
}

impl GridReport {
    /// The best point (highest mean score).
    pub fn best(&self) -> Option<&GridRow> {
        self.rows.first()
    }

    /// Mean score over all points that share each value of one hyperparameter:
    /// `(value, mean score)` for `"learning_rate"`, `"optimizer"`, `"dropout"` or `"dense"`.
    pub fn marginal(&self, hyperparameter: &str) -> Result<Vec<(String, f64)>> {
        let key = |p: &GridPoint| -> Result<String> {
            Ok(match hyperparameter {
                "learning_rate" => format!("{:e}", p.learning_rate),
                "optimizer" => p.optimizer.clone(),
                "dropout" => p.dropout.to_string(),
                "dense" => p.dense.to_string(),
                other => {
                    return Err(Error::param(
                        "hyperparameter",
                        format!("{other:?} is not one of learning_rate, optimizer, dropout, dense"),
                    ))
                }
            })
        };
        let mut groups: Vec<(String, f64, usize)> = Vec::new();
        for r in &self.rows {
            let k = key(&r.point)?;
            match groups.iter_mut().find(|g| g.0 == k) {
                Some(g) => {
                    g.1 += r.mean_score;
                    g.2 += 1;
                }
                None => groups.push((k, r.mean_score, 1)),
            }
        }
        Ok(groups
            .into_iter()
            .map(|(k, sum, n)| (k, sum / n as f64))
            .collect())
    }

    /// A bar chart of [`GridReport::marginal`] for all four hyperparameters, as mean held-out
    /// log loss (lower is better).
    pub fn effects_chart(&self) -> Result<crate::viz::Figure> {
        let mut categories = Vec::new();
        let mut values = Vec::new();
        for (name, label) in [
            ("learning_rate", "lr "),
            ("optimizer", ""),
            ("dropout", "dropout "),
            ("dense", "dense "),
        ] {
            for (value, score) in self.marginal(name)? {
                categories.push(format!("{label}{value}"));
                values.push(-score);
            }
        }
        crate::viz::BarChart {
            title: "mean held-out log loss per hyperparameter value (lower is better)".into(),
            categories,
            series: vec![("log loss".into(), values)],
            y_label: "log loss".into(),
            ..Default::default()
        }
        .draw()
    }

    /// Writes the report as `report.json` into `dir` (atomically).
    pub fn save(&self, dir: &std::path::Path) -> Result<()> {
        crate::util::write_json_atomic(&dir.join("report.json"), self)
    }

    /// The ranking as an HTML table (rank, hyperparameters, mean ± std score, accuracy, time).
    pub fn to_html(&self) -> crate::display::Html {
        let mut h = String::from(
            "<table><thead><tr><th>rank</th><th>learning rate</th><th>optimizer</th><th>dropout</th>\
             <th>dense</th><th>mean neg. log loss</th><th>± std</th><th>mean accuracy</th><th>seconds</th></tr></thead><tbody>",
        );
        for (i, r) in self.rows.iter().enumerate() {
            h.push_str(&format!(
                "<tr><td>{}</td><td>{:e}</td><td>{}</td><td>{}</td><td>{}</td><td>{:.4}</td><td>{:.4}</td><td>{:.4}</td><td>{:.0}</td></tr>",
                i + 1,
                r.point.learning_rate,
                r.point.optimizer,
                r.point.dropout,
                r.point.dense,
                r.mean_score,
                r.std_score,
                r.mean_accuracy,
                r.seconds
            ));
        }
        h.push_str("</tbody></table>");
        crate::display::Html(h)
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
/// by mean negative log loss on the held-out folds.
pub fn grid_search(
    spec: &GridSpec,
    settings: &GridSettings,
    set: &ImageSet,
    device: Device,
) -> Result<GridReport> {
    let folds = stratified_folds(&set.labels, settings.folds)?;
    let fold_sets = folds
        .iter()
        .map(|(train, held)| Ok((set.select(train)?, set.select(held)?)))
        .collect::<Result<Vec<_>>>()?;
    let points = spec.points();
    if points.is_empty() {
        return Err(Error::param("spec", "the grid has no point"));
    }
    let mut rows = Vec::with_capacity(points.len());
    for (i, (point, optimizer)) in points.into_iter().enumerate() {
        let start = std::time::Instant::now();
        let (mut losses, mut accuracies) = (Vec::new(), Vec::new());
        for (train, held) in &fold_sets {
            tch::manual_seed(settings.seed as i64);
            let vs = nn::VarStore::new(device);
            let model = Cnn4::new(
                &vs.root(),
                &Cnn4Config {
                    dense: vec![point.dense, 256],
                    dropout: point.dropout,
                    ..Default::default()
                },
            )?;
            let config = TrainConfig {
                epochs: settings.epochs,
                batch_size: settings.batch_size,
                optimizer,
                learning_rate: point.learning_rate,
                schedule: LrSchedule::Constant,
                early_stopping_patience: None,
                restore_best: false,
                augment: Default::default(),
                seed: settings.seed,
                verbose: false,
                channels_last: true,
                ..Default::default()
            };
            let mut trainer = Trainer::with_model(vs, Box::new(model), config)?;
            trainer.fit(train, held)?;
            let last = trainer
                .history
                .epochs
                .last()
                .ok_or_else(|| Error::param("epochs", "must be at least 1"))?;
            losses.push(last.val_loss);
            accuracies.push(last.val_accuracy);
        }
        let scores: Vec<f64> = losses.iter().map(|l| -l).collect();
        let mean = scores.iter().sum::<f64>() / scores.len() as f64;
        let var = scores.iter().map(|s| (s - mean).powi(2)).sum::<f64>() / scores.len() as f64;
        let row = GridRow {
            point,
            mean_score: mean,
            std_score: var.sqrt(),
            mean_accuracy: accuracies.iter().sum::<f64>() / accuracies.len() as f64,
            fold_log_loss: losses,
            fold_accuracy: accuracies,
            seconds: start.elapsed().as_secs_f64(),
        };
        if settings.verbose {
            println!(
                "{:>2}. {:<40} neg. log loss {:.4} ± {:.4}, accuracy {:.4} ({:.0} s)",
                i + 1,
                row.point.to_string(),
                row.mean_score,
                row.std_score,
                row.mean_accuracy,
                row.seconds
            );
        }
        rows.push(row);
    }
    rows.sort_by(|a, b| b.mean_score.total_cmp(&a.mean_score));
    Ok(GridReport {
        rows,
        settings: settings.clone(),
        images: set.len(),
    })
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
