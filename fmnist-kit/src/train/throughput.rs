//! The training benchmark (`fmnist bench train`, `make bench`): training throughput of a
//! trainer's steps, outside the loop.

use std::time::Instant;

use super::trainer::Trainer;
use crate::augment::Augmenter;
use crate::data::ImageSet;
use crate::error::{Error, Result};

/// Training throughput in images/s over `steps` batches of `set` (after 3 warm-up steps), with
/// or without the trainer's configured augmentation, in the trainer's memory layout. This
/// trains the network.
pub fn measure_throughput(
    trainer: &mut Trainer,
    set: &ImageSet,
    steps: usize,
    augment: bool,
) -> Result<f64> {
    let bs = trainer.config.batch_size;
    if set.len() < bs || steps == 0 {
        return Err(Error::param(
            "set",
            format!("need at least one batch of {bs} images and one step"),
        ));
    }
    let x = set.images_tensor().to_device(trainer.device);
    let y = set.labels_tensor().to_device(trainer.device);
    let mut augmenter = Augmenter::new(trainer.config.augment.clone(), trainer.config.seed)?;
    let batches = set.len() / bs;
    let mut run = |t: &mut Trainer, count: usize| -> Result<f64> {
        let start = Instant::now();
        let mut last = None;
        for s in 0..count {
            let lo = ((s % batches) * bs) as i64;
            let mut xb = x.narrow(0, lo, bs as i64);
            if augment {
                xb = augmenter.apply(&xb)?;
            }
            last = Some(t.train_batch(&xb, &y.narrow(0, lo, bs as i64))?);
        }
        if let Some(loss) = last {
            let _ = loss.double_value(&[]); // wait for the device
        }
        Ok(start.elapsed().as_secs_f64())
    };
    let seconds = trainer.in_training_layout(|t| {
        run(t, 3)?;
        run(t, steps)
    })?;
    Ok((steps * bs) as f64 / seconds)
}
