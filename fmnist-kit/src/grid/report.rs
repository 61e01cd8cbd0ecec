//! The ranking of a finished search: per point, the held-out scores of every fold, their mean
//! and spread; the per-value effects; an HTML table, a chart and `report.json`.

use serde::{Deserialize, Serialize};

use super::spec::{GridPoint, GridSettings};
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

/// How one (point, fold) fit ended.
#[derive(Clone, Debug, PartialEq)]
pub enum FitScore {
    /// Held-out log loss and accuracy after the last epoch, and the fit's time.
    Scored {
        log_loss: f64,
        accuracy: f64,
        seconds: f64,
    },
    /// The loss became NaN or infinite: why, and the time until then.
    Diverged { reason: String, seconds: f64 },
}

impl FitScore {
    /// The fit's time in seconds.
    pub fn seconds(&self) -> f64 {
        match self {
            FitScore::Scored { seconds, .. } | FitScore::Diverged { seconds, .. } => *seconds,
        }
    }
}

/// A point whose fit diverged on at least one fold. It has no score and ranks after every
/// scored point, as scikit-learn ranks a point whose `error_score` is NaN.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DivergedPoint {
    pub point: GridPoint,
    /// The folds whose fit diverged.
    pub folds: Vec<usize>,
    /// Why the first of them diverged.
    pub reason: String,
    pub seconds: f64,
}

/// Every point's scores, best first, then the points that diverged.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GridReport {
    pub rows: Vec<GridRow>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub diverged: Vec<DivergedPoint>,
    pub settings: GridSettings,
    pub images: usize,
}

impl GridReport {
    /// The rows built from each point's fold scores, in fold order, best first (ties keep the
    /// grid's order); a point with a diverged fold goes to [`GridReport::diverged`].
    pub fn from_scores(
        points: Vec<(GridPoint, Vec<FitScore>)>,
        settings: &GridSettings,
        images: usize,
    ) -> GridReport {
        let mut rows = Vec::new();
        let mut diverged = Vec::new();
        for (point, folds) in points {
            let seconds = folds.iter().map(FitScore::seconds).sum();
            let mut losses = Vec::new();
            let mut accuracies = Vec::new();
            let mut failed = Vec::new();
            let mut reason = None;
            for (f, fold) in folds.into_iter().enumerate() {
                match fold {
                    FitScore::Scored {
                        log_loss, accuracy, ..
                    } => {
                        losses.push(log_loss);
                        accuracies.push(accuracy);
                    }
                    FitScore::Diverged { reason: why, .. } => {
                        failed.push(f);
                        reason.get_or_insert(why);
                    }
                }
            }
            if let Some(reason) = reason {
                diverged.push(DivergedPoint {
                    point,
                    folds: failed,
                    reason,
                    seconds,
                });
                continue;
            }
            let scores: Vec<f64> = losses.iter().map(|l| -l).collect();
            let n = scores.len().max(1) as f64;
            let mean = scores.iter().sum::<f64>() / n;
            let var = scores.iter().map(|s| (s - mean).powi(2)).sum::<f64>() / n;
            rows.push(GridRow {
                point,
                mean_score: mean,
                std_score: var.sqrt(),
                mean_accuracy: accuracies.iter().sum::<f64>() / n,
                fold_log_loss: losses,
                fold_accuracy: accuracies,
                seconds,
            });
        }
        rows.sort_by(|a, b| b.mean_score.total_cmp(&a.mean_score));
        GridReport {
            rows,
            diverged,
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
            && self.diverged.len() == other.diverged.len()
            && self
                .diverged
                .iter()
                .zip(&other.diverged)
                .all(|(a, b)| a.point == b.point && a.folds == b.folds)
    }

    /// The best point (highest mean score; none when every point diverged).
    pub fn best(&self) -> Option<&GridRow> {
        self.rows.first()
    }

    /// Mean score over all scored points that share each value of one hyperparameter (points
    /// that diverged have no score to average):
    /// `(value, mean score)` for `"learning_rate"`, `"optimizer"`, `"dropout"` or `"dense"`.
    pub fn marginal(&self, hyperparameter: &str) -> Result<Vec<(String, f64)>> {
        Ok(self
            .group_means(&[hyperparameter])?
            .into_iter()
            .map(|(mut k, m)| (k.remove(0), m))
            .collect())
    }

    /// Mean score over the scored points that share each pair of values of two
    /// hyperparameters: `(value of a, value of b, mean score)`, in the grid's order. Where one
    /// hyperparameter's effect depends on the other (SGD barely moves at a small learning rate,
    /// Adam does), the marginal means of [`GridReport::marginal`] mislead and these show why.
    pub fn interaction(&self, a: &str, b: &str) -> Result<Vec<(String, String, f64)>> {
        if a == b {
            return Err(Error::param(
                "hyperparameter",
                format!("an interaction needs two different hyperparameters, not {a:?} twice"),
            ));
        }
        Ok(self
            .group_means(&[a, b])?
            .into_iter()
            .map(|(mut k, m)| {
                let second = k.remove(1);
                (k.remove(0), second, m)
            })
            .collect())
    }

    /// Mean score per combination of values of `hyperparameters`, in order of first appearance.
    fn group_means(&self, hyperparameters: &[&str]) -> Result<Vec<(Vec<String>, f64)>> {
        let mut groups: Vec<(Vec<String>, f64, usize)> = Vec::new();
        for r in &self.rows {
            let k = hyperparameters
                .iter()
                .map(|h| point_value(&r.point, h))
                .collect::<Result<Vec<String>>>()?;
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

    /// A bar chart of [`GridReport::marginal`] for all four hyperparameters, in the ranking's
    /// sign: mean held-out negative log loss, higher is better. The axis starts just below the
    /// lowest bar, so that differences of a few hundredths show.
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
                values.push(score);
            }
        }
        crate::viz::BarChart {
            title: "mean held-out negative log loss per hyperparameter value (higher is better)"
                .into(),
            categories,
            baseline: Some(crate::viz::baseline_below(&values)),
            series: vec![("negative log loss".into(), values)],
            y_label: "negative log loss".into(),
            ..Default::default()
        }
        .draw()
    }

    /// Grouped bars of [`GridReport::interaction`]: one group per value of `a`, one bar per
    /// value of `b`, mean held-out negative log loss (higher is better).
    pub fn interaction_chart(&self, a: &str, b: &str) -> Result<crate::viz::Figure> {
        let cells = self.interaction(a, b)?;
        let mut groups: Vec<String> = Vec::new();
        let mut bars: Vec<String> = Vec::new();
        for (va, vb, _) in &cells {
            if !groups.contains(va) {
                groups.push(va.clone());
            }
            if !bars.contains(vb) {
                bars.push(vb.clone());
            }
        }
        let series: Vec<(String, Vec<f64>)> = bars
            .iter()
            .map(|vb| {
                let values = groups
                    .iter()
                    .map(|va| {
                        cells
                            .iter()
                            .find(|c| &c.0 == va && &c.1 == vb)
                            .map_or(f64::NAN, |c| c.2)
                    })
                    .collect();
                (format!("{b} {vb}"), values)
            })
            .collect();
        let all: Vec<f64> = cells.iter().map(|c| c.2).collect();
        crate::viz::BarChart {
            title: format!("mean held-out negative log loss by {a} and {b} (higher is better)"),
            categories: groups.iter().map(|g| format!("{a} {g}")).collect(),
            baseline: Some(crate::viz::baseline_below(&all)),
            series,
            y_label: "negative log loss".into(),
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
        for d in &self.diverged {
            let folds: Vec<String> = d.folds.iter().map(|f| (f + 1).to_string()).collect();
            h.push_str(&format!(
                "<tr><td>—</td><td>{:e}</td><td>{}</td><td>{}</td><td>{}</td><td colspan=\"3\">diverged on fold {}: {}</td><td>{:.0}</td></tr>",
                d.point.learning_rate,
                d.point.optimizer,
                d.point.dropout,
                d.point.dense,
                folds.join(", "),
                crate::display::escape_html(&d.reason),
                d.seconds
            ));
        }
        h.push_str("</tbody></table>");
        crate::display::Html(h)
    }
}

/// The value of one hyperparameter of `point`, as the report prints it.
fn point_value(p: &GridPoint, hyperparameter: &str) -> Result<String> {
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
}
