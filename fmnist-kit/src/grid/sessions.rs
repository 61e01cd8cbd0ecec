//! The grid in TensorBoard's HParams view: each point one session (its settings, and the mean
//! held-out log loss and accuracy over its folds), in `<dir>/tensorboard/<point>/`, beside the
//! folders of its fits (`fold-<k>/`, the training curves, written by each fit); the columns in
//! `<dir>/tensorboard/`. Each file is written whole and replaced when the report is built again,
//! so the view holds one row per point.

use std::path::Path;

use super::report::GridReport;
use super::spec::GridPoint;
use crate::error::Result;
use crate::tensorboard::{EventWriter, HParam};

/// The grid's TensorBoard folder inside its directory.
pub const TENSORBOARD_DIR: &str = "tensorboard";

/// The scalar tags each point's session holds.
pub const SESSION_METRICS: [&str; 3] = ["cv/log_loss", "cv/accuracy", "cv/std_score"];

impl GridReport {
    /// Writes the HParams view of the ranked points into `root` (`<dir>/tensorboard`).
    pub fn log_sessions(&self, root: &Path) -> Result<()> {
        let Some(first) = self.rows.first() else {
            return Ok(());
        };
        let hparams_of = |point: &GridPoint| {
            let mut h = point.hparams();
            h.push(("folds".into(), HParam::Number(self.settings.folds as f64)));
            h
        };
        EventWriter::replace(root, "grid-experiment", |w| {
            w.hparams_experiment("grid search", &hparams_of(&first.point), &SESSION_METRICS)
        })?;
        for row in &self.rows {
            let hparams = hparams_of(&row.point);
            EventWriter::replace(&root.join(row.point.slug()), "grid-session", |w| {
                w.hparams_session(&hparams)?;
                w.scalars(
                    0,
                    &[
                        (SESSION_METRICS[0], -row.mean_score),
                        (SESSION_METRICS[1], row.mean_accuracy),
                        (SESSION_METRICS[2], row.std_score),
                    ],
                )?;
                w.hparams_session_end()
            })?;
        }
        Ok(())
    }
}
