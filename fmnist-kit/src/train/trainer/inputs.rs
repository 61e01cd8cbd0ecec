//! What the loop checks of the tensors it is given before it trains on them.

use tch::Tensor;

use crate::error::{Error, Result};
use crate::train::config::TrainConfig;

/// Inputs `x` `[N, …]` with labels `y` `[N]`, and the same for validation: neither empty, the
/// label counts matching, and augmentation configured only for 1-channel image batches.
pub(super) fn check_inputs(
    x: &Tensor,
    y: &Tensor,
    x_val: &Tensor,
    y_val: &Tensor,
    config: &TrainConfig,
) -> Result<()> {
    let (n, n_val) = (x.size().first().copied(), x_val.size().first().copied());
    if n.unwrap_or(0) == 0 || n_val.unwrap_or(0) == 0 {
        return Err(Error::param(
            "train",
            "the training and validation sets must not be empty",
        ));
    }
    if y.size() != [n.unwrap_or(0)] || y_val.size() != [n_val.unwrap_or(0)] {
        return Err(Error::param(
            "labels",
            format!(
                "{:?} and {:?} labels for {:?} and {:?} inputs",
                y.size(),
                y_val.size(),
                x.size(),
                x_val.size()
            ),
        ));
    }
    let images = x.dim() == 4 && x.size()[1] == 1;
    if !images && !config.augment.is_identity() {
        return Err(Error::param(
            "augment",
            format!(
                "augmentation works on image batches [N, 1, H, W], not on {:?}",
                x.size()
            ),
        ));
    }
    Ok(())
}
