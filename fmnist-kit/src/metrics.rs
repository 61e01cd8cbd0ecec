//! Accuracy, log loss, confusion matrix and a classification report with exactly the numbers of
//! scikit-learn's `classification_report(..., labels=range(10), zero_division=0)` (checked against
//! fixtures it produced), rendered as its text layout or as an HTML table.

use serde::Serialize;

use crate::data::{CLASS_NAMES, NUM_CLASSES};
use crate::error::{Error, Result};

fn check(labels: &[u8], predicted: &[u8]) -> Result<()> {
    if labels.len() != predicted.len() {
        return Err(Error::param(
            "predicted",
            format!(
                "{} predictions for {} labels",
                predicted.len(),
                labels.len()
            ),
        ));
    }
    if labels.is_empty() {
        return Err(Error::param("labels", "no labels"));
    }
    if let Some(v) = labels
        .iter()
        .chain(predicted)
        .find(|&&v| v as usize >= NUM_CLASSES)
    {
        return Err(Error::param(
            "labels",
            format!("class {v} is outside 0..=9"),
        ));
    }
    Ok(())
}

/// Share of predictions equal to their label.
pub fn accuracy(labels: &[u8], predicted: &[u8]) -> Result<f64> {
    check(labels, predicted)?;
    let right = labels.iter().zip(predicted).filter(|(a, b)| a == b).count();
    Ok(right as f64 / labels.len() as f64)
}

/// Mean negative log-likelihood of the true class, rows of `probabilities` (`[N][10]`) being
/// renormalised and clipped to `[eps, 1 - eps]` (float64 epsilon) as scikit-learn's `log_loss` does.
pub fn log_loss(labels: &[u8], probabilities: &[[f64; NUM_CLASSES]]) -> Result<f64> {
    if labels.len() != probabilities.len() || labels.is_empty() {
        return Err(Error::param(
            "probabilities",
            format!("{} rows for {} labels", probabilities.len(), labels.len()),
        ));
    }
    let eps = f64::EPSILON;
    let mut total = 0.0;
    for (row, &l) in probabilities.iter().zip(labels) {
        if l as usize >= NUM_CLASSES || row.iter().any(|p| !p.is_finite() || *p < 0.0) {
            return Err(Error::param(
                "probabilities",
                "a row holds a negative or non-finite value",
            ));
        }
        let sum: f64 = row.iter().sum();
        if sum <= 0.0 {
            return Err(Error::param("probabilities", "a row sums to zero"));
        }
        let p = (row[l as usize] / sum).clamp(eps, 1.0 - eps);
        total -= p.ln();
    }
    Ok(total / labels.len() as f64)
}

/// Counts `[true class][predicted class]` (10 × 10).
pub fn confusion_matrix(
    labels: &[u8],
    predicted: &[u8],
) -> Result<[[u64; NUM_CLASSES]; NUM_CLASSES]> {
    check(labels, predicted)?;
    let mut m = [[0u64; NUM_CLASSES]; NUM_CLASSES];
    for (&t, &p) in labels.iter().zip(predicted) {
        m[t as usize][p as usize] += 1;
    }
    Ok(m)
}

/// Each row divided by its total (a class absent from the labels gives a row of zeros).
pub fn normalize_rows(m: &[[u64; NUM_CLASSES]; NUM_CLASSES]) -> [[f64; NUM_CLASSES]; NUM_CLASSES] {
    let mut out = [[0.0; NUM_CLASSES]; NUM_CLASSES];
    for (o, row) in out.iter_mut().zip(m) {
        let total: u64 = row.iter().sum();
        if total > 0 {
            for (v, &c) in o.iter_mut().zip(row) {
                *v = c as f64 / total as f64;
            }
        }
    }
    out
}

/// Precision, recall, F1 and support of one class or one average.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct ClassScores {
    pub precision: f64,
    pub recall: f64,
    #[serde(rename = "f1-score")]
    pub f1: f64,
    pub support: u64,
}

/// scikit-learn's classification report over the ten classes.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ClassificationReport {
    /// One entry per class, index = label.
    pub classes: Vec<ClassScores>,
    pub accuracy: f64,
    pub macro_avg: ClassScores,
    pub weighted_avg: ClassScores,
}

fn ratio(num: f64, den: f64) -> f64 {
    if den == 0.0 {
        0.0
    } else {
        num / den
    }
}

impl ClassificationReport {
    /// Computes the report (`zero_division = 0`: a ratio with an empty denominator is 0).
    pub fn new(labels: &[u8], predicted: &[u8]) -> Result<ClassificationReport> {
        let m = confusion_matrix(labels, predicted)?;
        let mut classes = Vec::with_capacity(NUM_CLASSES);
        for c in 0..NUM_CLASSES {
            let tp = m[c][c] as f64;
            let support: u64 = m[c].iter().sum();
            let predicted_c: u64 = m.iter().map(|row| row[c]).sum();
            let precision = ratio(tp, predicted_c as f64);
            let recall = ratio(tp, support as f64);
            // scikit-learn: F = (1 + β²)·tp / ((1 + β²)·tp + β²·fn + fp) with β = 1.
            let f1 = ratio(
                2.0 * tp,
                2.0 * tp + (support as f64 - tp) + (predicted_c as f64 - tp),
            );
            classes.push(ClassScores {
                precision,
                recall,
                f1,
                support,
            });
        }
        let total: u64 = classes.iter().map(|c| c.support).sum();
        let mean = |f: &dyn Fn(&ClassScores) -> f64| {
            classes.iter().map(f).sum::<f64>() / NUM_CLASSES as f64
        };
        let weighted = |f: &dyn Fn(&ClassScores) -> f64| {
            ratio(
                classes.iter().map(|c| f(c) * c.support as f64).sum::<f64>(),
                total as f64,
            )
        };
        let macro_avg = ClassScores {
            precision: mean(&|c| c.precision),
            recall: mean(&|c| c.recall),
            f1: mean(&|c| c.f1),
            support: total,
        };
        let weighted_avg = ClassScores {
            precision: weighted(&|c| c.precision),
            recall: weighted(&|c| c.recall),
            f1: weighted(&|c| c.f1),
            support: total,
        };
        Ok(ClassificationReport {
            classes,
            accuracy: accuracy(labels, predicted)?,
            macro_avg,
            weighted_avg,
        })
    }

    /// The report in scikit-learn's `output_dict=True` layout: keys are the class names,
    /// `accuracy`, `macro avg` and `weighted avg`.
    pub fn to_json(&self) -> serde_json::Value {
        let mut map = serde_json::Map::new();
        for (name, c) in CLASS_NAMES.iter().zip(&self.classes) {
            map.insert(name.to_string(), serde_json::json!(c));
        }
        map.insert("accuracy".into(), serde_json::json!(self.accuracy));
        map.insert("macro avg".into(), serde_json::json!(self.macro_avg));
        map.insert("weighted avg".into(), serde_json::json!(self.weighted_avg));
        serde_json::Value::Object(map)
    }

    /// The report as scikit-learn prints it (2 digits), with the original's class names.
    pub fn to_text(&self) -> String {
        let width = CLASS_NAMES
            .iter()
            .map(|n| n.len())
            .max()
            .unwrap_or(0)
            .max("weighted avg".len());
        let mut s = format!(
            "{:>width$}  {:>9} {:>9} {:>9} {:>9}\n\n",
            "", "precision", "recall", "f1-score", "support"
        );
        let row = |name: &str, c: &ClassScores| {
            format!(
                "{name:>width$}  {:>9.2} {:>9.2} {:>9.2} {:>9}\n",
                c.precision, c.recall, c.f1, c.support
            )
        };
        for (name, c) in CLASS_NAMES.iter().zip(&self.classes) {
            s.push_str(&row(name, c));
        }
        s.push('\n');
        s.push_str(&format!(
            "{:>width$}  {:>9} {:>9} {:>9.2} {:>9}\n",
            "accuracy", "", "", self.accuracy, self.macro_avg.support
        ));
        s.push_str(&row("macro avg", &self.macro_avg));
        s.push_str(&row("weighted avg", &self.weighted_avg));
        s
    }

    /// The report as an HTML table for a notebook cell.
    pub fn to_html(&self) -> crate::display::Html {
        let mut h = String::from(
            "<table><thead><tr><th></th><th>precision</th><th>recall</th><th>f1-score</th><th>support</th></tr></thead><tbody>",
        );
        let row = |name: &str, c: &ClassScores| {
            format!(
                "<tr><th style=\"text-align:right\">{name}</th><td>{:.4}</td><td>{:.4}</td><td>{:.4}</td><td>{}</td></tr>",
                c.precision, c.recall, c.f1, c.support
            )
        };
        for (name, c) in CLASS_NAMES.iter().zip(&self.classes) {
            h.push_str(&row(name, c));
        }
        h.push_str(&format!(
            "<tr><th style=\"text-align:right\">accuracy</th><td></td><td></td><td>{:.4}</td><td>{}</td></tr>",
            self.accuracy, self.macro_avg.support
        ));
        h.push_str(&row("macro avg", &self.macro_avg));
        h.push_str(&row("weighted avg", &self.weighted_avg));
        h.push_str("</tbody></table>");
        crate::display::Html(h)
    }
}

/// A model's predictions on a labelled set, in the set's order.
#[derive(Clone, Debug, PartialEq)]
pub struct Predictions {
    pub labels: Vec<u8>,
    pub predicted: Vec<u8>,
    /// Class probabilities, one row of 10 per image.
    pub probabilities: Vec<[f64; NUM_CLASSES]>,
}

impl Predictions {
    /// From probabilities `[N, 10]` (any float tensor) and the true labels.
    pub fn from_probabilities(labels: &[u8], probabilities: &tch::Tensor) -> Result<Predictions> {
        let size = probabilities.size();
        if size != [labels.len() as i64, NUM_CLASSES as i64] {
            return Err(Error::param(
                "probabilities",
                format!("shape {size:?}, expected [{}, {NUM_CLASSES}]", labels.len()),
            ));
        }
        let flat: Vec<f64> =
            Vec::<f64>::try_from(probabilities.to_kind(tch::Kind::Double).flatten(0, -1))?;
        let rows: Vec<[f64; NUM_CLASSES]> = flat
            .chunks(NUM_CLASSES)
            .map(|c| std::array::from_fn(|i| c[i]))
            .collect();
        let predicted = rows
            .iter()
            .map(|r| {
                (0..NUM_CLASSES)
                    .max_by(|&a, &b| r[a].total_cmp(&r[b]))
                    .unwrap_or(0) as u8
            })
            .collect();
        Ok(Predictions {
            labels: labels.to_vec(),
            predicted,
            probabilities: rows,
        })
    }

    pub fn accuracy(&self) -> Result<f64> {
        accuracy(&self.labels, &self.predicted)
    }

    pub fn report(&self) -> Result<ClassificationReport> {
        ClassificationReport::new(&self.labels, &self.predicted)
    }

    pub fn confusion_matrix(&self) -> Result<[[u64; NUM_CLASSES]; NUM_CLASSES]> {
        confusion_matrix(&self.labels, &self.predicted)
    }

    pub fn log_loss(&self) -> Result<f64> {
        log_loss(&self.labels, &self.probabilities)
    }

    /// Positions of the first `n` wrong predictions.
    pub fn misclassified(&self, n: usize) -> Vec<usize> {
        (0..self.labels.len())
            .filter(|&i| self.labels[i] != self.predicted[i])
            .take(n)
            .collect()
    }

    /// Positions of the `n` images with the largest loss (minus the log of the probability given
    /// to the true class), largest first: fastai's "top losses", the answers the network was most
    /// confidently wrong about (or least sure of, when right). Ties keep the images' order.
    pub fn top_losses(&self, n: usize) -> Vec<usize> {
        let mut order: Vec<usize> = (0..self.labels.len()).collect();
        // An image without a probability row sorts first, as if it gave its class nothing.
        let p_true = |i: usize| {
            self.probabilities
                .get(i)
                .and_then(|row| row.get(self.labels[i] as usize))
                .copied()
                .unwrap_or(0.0)
        };
        order.sort_by(|&a, &b| p_true(a).total_cmp(&p_true(b)));
        order.truncate(n);
        order
    }

    /// Positions of the first `n` right predictions.
    pub fn correct(&self, n: usize) -> Vec<usize> {
        (0..self.labels.len())
            .filter(|&i| self.labels[i] == self.predicted[i])
            .take(n)
            .collect()
    }

    /// `index,label,predicted,p0,...,p9`, one row per image.
    pub fn to_csv(&self) -> String {
        let mut csv = String::from("index,label,predicted");
        for k in 0..NUM_CLASSES {
            csv.push_str(&format!(",p{k}"));
        }
        csv.push('\n');
        for (i, r) in self.probabilities.iter().enumerate() {
            csv.push_str(&format!("{i},{},{}", self.labels[i], self.predicted[i]));
            for v in r {
                csv.push_str(&format!(",{v}"));
            }
            csv.push('\n');
        }
        csv
    }
}

/// A pair of classes the model confuses.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct ConfusedPair {
    pub true_class: usize,
    pub predicted: usize,
    pub count: u64,
    /// Share of the true class's images predicted as `predicted`.
    pub share: f64,
}

/// The `k` largest off-diagonal cells of a confusion matrix, largest first.
pub fn most_confused(m: &[[u64; NUM_CLASSES]; NUM_CLASSES], k: usize) -> Vec<ConfusedPair> {
    let shares = normalize_rows(m);
    let mut pairs: Vec<ConfusedPair> = (0..NUM_CLASSES)
        .flat_map(|t| (0..NUM_CLASSES).map(move |p| (t, p)))
        .filter(|&(t, p)| t != p && m[t][p] > 0)
        .map(|(t, p)| ConfusedPair {
            true_class: t,
            predicted: p,
            count: m[t][p],
            share: shares[t][p],
        })
        .collect();
    pairs.sort_by(|a, b| b.count.cmp(&a.count).then(a.true_class.cmp(&b.true_class)));
    pairs.truncate(k);
    pairs
}

/// The pairs as an HTML table.
pub fn confused_pairs_html(pairs: &[ConfusedPair]) -> crate::display::Html {
    let mut h = String::from("<table><thead><tr><th>true class</th><th>predicted as</th><th>images</th><th>share of the class</th></tr></thead><tbody>");
    for p in pairs {
        h.push_str(&format!(
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{:.1}%</td></tr>",
            CLASS_NAMES[p.true_class],
            CLASS_NAMES[p.predicted],
            p.count,
            p.share * 100.0
        ));
    }
    h.push_str("</tbody></table>");
    crate::display::Html(h)
}
