//! The ranking of a finished search: per point, the held-out scores of every fold, their mean
//! and spread; the per-value effects; an HTML table, a chart and `report.json`.

use serde::{Deserialize, Serialize};

use super::{GridPoint, GridSettings};
use crate::error::{Error, Result};

/// The cross-validated scores of one point.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
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
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GridReport {
    pub rows: Vec<GridRow>,
    pub settings: GridSettings,
    pub images: usize,
}

impl GridReport {
    /// The rows built from each point's fold scores `(log loss, accuracy, seconds)`, in fold
    /// order, best first (ties keep the grid's order).
    pub fn from_scores(
        points: Vec<(GridPoint, Vec<(f64, f64, f64)>)>,
        settings: &GridSettings,
        images: usize,
    ) -> GridReport {
        let mut rows: Vec<GridRow> = points
            .into_iter()
            .map(|(point, folds)| {
                let losses: Vec<f64> = folds.iter().map(|f| f.0).collect();
                let accuracies: Vec<f64> = folds.iter().map(|f| f.1).collect();
                let scores: Vec<f64> = losses.iter().map(|l| -l).collect();
                let n = scores.len().max(1) as f64;
                let mean = scores.iter().sum::<f64>() / n;
                let var = scores.iter().map(|s| (s - mean).powi(2)).sum::<f64>() / n;
                GridRow {
                    point,
                    mean_score: mean,
                    std_score: var.sqrt(),
                    mean_accuracy: accuracies.iter().sum::<f64>() / n,
                    fold_log_loss: losses,
                    fold_accuracy: accuracies,
                    seconds: folds.iter().map(|f| f.2).sum(),
                }
            })
            .collect();
        rows.sort_by(|a, b| b.mean_score.total_cmp(&a.mean_score));
        GridReport {
            rows,
            settings: settings.clone(),
            images,
        }
    }

    /// True when both reports rank the same points with the same fold scores, compared
    /// exactly (times may differ).
    pub fn same_scores(&self, other: &GridReport) -> bool {
        self.rows.len() == other.rows.len()
            && self.rows.iter().zip(&other.rows).all(|(a, b)| {
                a.point == b.point
                    && a.fold_log_loss == b.fold_log_loss
                    && a.fold_accuracy == b.fold_accuracy
                    && a.mean_score == b.mean_score
            })
    }

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
