//! One fit of a grid search: a point trained on the other folds and scored on its fold.

use tch::Device;

use super::spec::{GridPoint, GridSettings};
use crate::data::ImageSet;
use crate::error::{Error, Result};
use crate::train::{fit_interruptibly, OptimizerKind, Trainer};

/// One fit: a fresh `Cnn4` with the point's dropout and dense size, trained for the settings'
/// epochs at the point's constant learning rate (no augmentation), scored on the held-out fold
/// after its last epoch. Returns `(log loss, accuracy)`, or `None` when an interrupt (SIGINT)
/// stopped the fit: the search then stops and records nothing of it.
pub fn fit_point(
    point: &GridPoint,
    optimizer: OptimizerKind,
    settings: &GridSettings,
    train: &ImageSet,
    held_out: &ImageSet,
    device: Device,
) -> Result<Option<(f64, f64)>> {
    let config = point.train_config(optimizer, settings);
    let mut trainer = Trainer::new(point.network(), config, device)?;
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
