//! One fit of a grid search: a point trained on the other folds and scored on its fold.

use std::path::Path;

use tch::Device;

use super::spec::{GridPoint, GridSettings};
use crate::data::ImageSet;
use crate::error::{Error, Result};
use crate::tensorboard::clear_run;
use crate::train::{fit_interruptibly, OptimizerKind, TensorBoardSink, Trainer};

/// One fit: a fresh `Cnn4` with the point's dropout and dense size, trained for the settings'
/// epochs at the point's constant learning rate (no augmentation), scored on the held-out fold
/// after its last epoch, logged for TensorBoard in `log` (emptied first) when given. Returns `(log loss, accuracy)`, or `None` when an interrupt (SIGINT)
/// stopped the fit: the search then stops and records nothing of it.
pub fn fit_point(
    point: &GridPoint,
    optimizer: OptimizerKind,
    settings: &GridSettings,
    train: &ImageSet,
    held_out: &ImageSet,
    device: Device,
    log: Option<&Path>,
) -> Result<Option<(f64, f64)>> {
    let config = point.train_config(optimizer, settings);
    let mut trainer = Trainer::new(point.network(), config, device)?;
    if let Some(dir) = log {
        clear_run(dir)?;
        trainer.add_sink(Box::new(TensorBoardSink::new(dir).without_hparams()));
    }
    if fit_interruptibly(&mut trainer, |t| t.fit(train, held_out).map(|_| ()))?.is_some() {
        return Ok(None);
    }
    let last = trainer
        .history
        .epochs
        .last()
        .ok_or_else(|| Error::param("epochs", "must be at least 1"))?;
    Ok(Some((last.val_loss, last.val_accuracy)))
}
