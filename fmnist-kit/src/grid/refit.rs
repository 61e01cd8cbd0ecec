//! The refit of the best point on all the search's images, as `GridSearchCV(refit=True)` does,
//! scored on the test set and saved where `fmnist evaluate` can load it.

use std::path::{Path, PathBuf};
use std::time::Instant;

use serde::{Deserialize, Serialize};
use tch::Device;

use super::report::GridReport;
use super::search::GridSearch;
use super::sessions::TENSORBOARD_DIR;
use super::spec::GridPoint;
use crate::data::ImageSet;
use crate::error::{Error, Result};
use crate::tensorboard::clear_run;
use crate::train::{fit_interruptibly, TrainConfig, Trainer};
use crate::util::{read_json, write_json_atomic};

/// Folder of the refit network inside a grid folder.
pub const REFIT_DIR: &str = "refit";
/// The refit network's weights in it.
pub const REFIT_WEIGHTS: &str = "model.safetensors";
/// The refit's [`RefitResult`] in it.
pub const REFIT_FILE: &str = "refit.json";

/// The best point retrained on all the images and scored on the test set.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RefitResult {
    pub point: GridPoint,
    /// Its cross-validated mean score (negative log loss).
    pub cv_score: f64,
    pub train_images: usize,
    pub test_images: usize,
    pub test_accuracy: f64,
    pub test_loss: f64,
    pub seconds: f64,
    /// The weights, with `network.json` and `refit.json` beside them.
    pub checkpoint: PathBuf,
    /// [`SearchIdentity::refit_key`](super::SearchIdentity::refit_key) of the search and point.
    #[serde(default)]
    pub key: String,
}

/// The refit of `report`'s best point already in `dir/refit/` for this search (same images,
/// settings and point, its weights present), or none.
pub fn saved_refit(search: &GridSearch, report: &GridReport, dir: &Path) -> Option<RefitResult> {
    let best = report.best()?;
    let key = search.identity.refit_key(&best.point).ok()?;
    let saved: RefitResult = read_json(&dir.join(REFIT_DIR).join(REFIT_FILE)).ok()?;
    // A refit written before refits had keys counts when its point, image count and
    // cross-validated score (compared exactly) are this search's.
    let same = if saved.key.is_empty() {
        saved.cv_score == best.mean_score && saved.train_images == search.images.len()
    } else {
        saved.key == key
    };
    (same && saved.point == best.point && saved.checkpoint.is_file()).then_some(saved)
}

/// The refit of the best point: the one saved in `dir/refit/` when it is this search's
/// ([`saved_refit`]), else trained now ([`refit_best`]). Returns it and whether it was read back.
pub fn refit_best_or_saved(
    search: &GridSearch,
    report: &GridReport,
    validation: &ImageSet,
    test: &ImageSet,
    dir: &Path,
    device: Device,
) -> Result<(RefitResult, bool)> {
    match saved_refit(search, report, dir) {
        Some(saved) => Ok((saved, true)),
        None => Ok((
            refit_best(search, report, validation, test, dir, device)?,
            false,
        )),
    }
}

/// Trains the best point of `report` on all of `search`'s images (its epochs, batch size and
/// seed, no augmentation, the last epoch kept, as in the cross-validation), scores it on `test`
/// and writes it to `dir/refit/`. `validation` only draws the per-epoch curve. An interrupt
/// (SIGINT) stops it with [`Error::Interrupted`], nothing written.
pub fn refit_best(
    search: &GridSearch,
    report: &GridReport,
    validation: &ImageSet,
    test: &ImageSet,
    dir: &Path,
    device: Device,
) -> Result<RefitResult> {
    let best = report
        .best()
        .ok_or_else(|| Error::param("report", "an empty report has no best point"))?;
    let (point, optimizer) = search
        .spec
        .points()
        .into_iter()
        .find(|(p, _)| p == &best.point)
        .ok_or_else(|| {
            Error::param(
                "report",
                format!("{} is not a point of the grid", best.point),
            )
        })?;
    let start = Instant::now();
    let log = dir.join(TENSORBOARD_DIR).join("refit");
    clear_run(&log)?;
    let mut trainer = Trainer::new(
        point.network(),
        TrainConfig {
            tensorboard_dir: search.settings.tensorboard.then_some(log),
            ..point.train_config(optimizer, &search.settings)
        },
        device,
    )?;
    if let Some(k) = fit_interruptibly(&mut trainer, |t| {
        t.fit(&search.images, validation).map(|_| ())
    })? {
        return Err(Error::Interrupted {
            what: "the refit",
            message: format!(
                "stopped after epoch {k} of {}; nothing was saved, and running it again trains the refit from the start",
                trainer.config.epochs
            ),
        });
    }
    let test_eval = trainer.evaluate(test)?;
    trainer.record_evaluation("test", &test_eval)?;
    let seconds = start.elapsed().as_secs_f64();
    let out = dir.join(REFIT_DIR);
    let net = trainer.network();
    let checkpoint = out.join(REFIT_WEIGHTS);
    net.save_weights(&checkpoint)?;
    net.network_file().save(&out)?;
    let key = search.identity.refit_key(&point)?;
    let result = RefitResult {
        point,
        cv_score: best.mean_score,
        train_images: search.images.len(),
        test_images: test.len(),
        test_accuracy: test_eval.accuracy,
        test_loss: test_eval.loss,
        seconds,
        checkpoint,
        key,
    };
    write_json_atomic(&out.join(REFIT_FILE), &result)?;
    Ok(result)
}
