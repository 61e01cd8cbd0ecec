//! The learning-rate finder (Smith 2017, "Cyclical Learning Rates for Training Neural Networks";
//! fastai's `lr_find`): a short sweep in which every optimiser step uses a larger rate than the
//! last, from `start_lr` to `end_lr` on a log scale, recording the training loss. The loss first
//! stays flat (too small to move anything), then falls, then blows up; a good peak rate lies where
//! it falls fastest ([`LrFinder::steepest`]), somewhat below the rate of the lowest loss.
//!
//! The sweep trains a throwaway network: the run that follows starts from fresh weights. An
//! interrupt (SIGINT) ends the sweep early; what it recorded so far is returned.

use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use tch::{Device, Tensor};

use super::config::TrainConfig;
use super::interrupt::InterruptGuard;
use super::schedule::LrSchedule;
use super::trainer::Trainer;
use crate::augment::Augmenter;
use crate::data::ImageSet;
use crate::error::{Error, Result};
use crate::models::NetworkConfig;
use crate::tensorboard::{clear_run, EventWriter};

/// How the sweep runs.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LrFindConfig {
    /// The rate of the first step.
    pub start_lr: f64,
    /// The rate of the last step.
    pub end_lr: f64,
    /// Optimiser steps (batches) of the sweep.
    pub steps: usize,
    /// Smoothing of the loss that decides when to stop: an exponential moving average with this
    /// weight on the past, bias-corrected (fastai's 0.98). It lags behind the rate, so the curve
    /// drawn and the suggestion use a centred moving average instead ([`LrFinder::smoothed`]).
    pub smoothing: f64,
    /// Stop once the running average exceeds this multiple of its lowest value.
    pub diverge_factor: f64,
}

impl Default for LrFindConfig {
    fn default() -> Self {
        LrFindConfig {
            start_lr: 1e-7,
            end_lr: 10.0,
            steps: 200,
            smoothing: 0.98,
            diverge_factor: 4.0,
        }
    }
}

/// The sweep's record: one row per step taken.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LrFinder {
    pub model: String,
    /// The rate of each step.
    pub rates: Vec<f64>,
    /// The batch loss of each step.
    pub losses: Vec<f64>,
    /// The loss of each step smoothed by a centred moving average over 2k + 1 steps (k = 1/30 of
    /// the steps, at least 2; fewer at both ends), which does not lag behind the rate.
    pub smoothed: Vec<f64>,
    /// Why the sweep ended: "reached end_lr", the loss diverged, or an interrupt.
    pub stop_reason: String,
}

impl LrFinder {
    /// The rate of the lowest smoothed loss.
    pub fn min_loss_rate(&self) -> Option<f64> {
        let i = (0..self.smoothed.len())
            .min_by(|&a, &b| self.smoothed[a].total_cmp(&self.smoothed[b]))?;
        Some(self.rates[i])
    }

    /// The suggested peak rate: where the smoothed loss falls fastest against log(rate), before
    /// its minimum (fastai's "steepest" suggestion). `None` for a sweep too short to tell.
    pub fn steepest(&self) -> Option<f64> {
        let n = self.smoothed.len();
        let end = (0..n).min_by(|&a, &b| self.smoothed[a].total_cmp(&self.smoothed[b]))?;
        if end < 2 {
            return None;
        }
        (1..end)
            .map(|i| {
                let slope = (self.smoothed[i + 1] - self.smoothed[i - 1])
                    / (self.rates[i + 1].ln() - self.rates[i - 1].ln());
                (i, slope)
            })
            .min_by(|a, b| a.1.total_cmp(&b.1))
            .map(|(i, _)| self.rates[i])
    }
}

/// Runs the sweep for a fresh `network` trained as `config` says (its optimiser, batch size,
/// regularisation, augmentation and seed; its schedule, early stopping and checkpoints are not
/// used) on shuffled batches of `train`. An interrupt (SIGINT, Jupyter's stop button) ends the
/// sweep after the step it is in and returns the steps taken.
pub fn lr_find(
    network: NetworkConfig,
    config: &TrainConfig,
    train: &ImageSet,
    find: &LrFindConfig,
    device: Device,
) -> Result<LrFinder> {
    if !(find.start_lr > 0.0 && find.end_lr > find.start_lr && find.steps >= 2) {
        return Err(Error::param(
            "lr_find",
            format!(
                "needs 0 < start_lr < end_lr and at least 2 steps, not {} .. {} over {} steps",
                find.start_lr, find.end_lr, find.steps
            ),
        ));
    }
    if !(0.0..1.0).contains(&find.smoothing) || !(find.diverge_factor > 1.0) {
        return Err(Error::param(
            "lr_find",
            "smoothing must lie in [0, 1) and diverge_factor above 1",
        ));
    }
    let bs = config.batch_size;
    if train.len() < bs {
        return Err(Error::param(
            "train",
            format!("{} images, fewer than one batch of {bs}", train.len()),
        ));
    }
    // The sweep is logged beside the run's own log, in `<its TensorBoard folder>/lr-find`.
    let mut log = match &config.tensorboard_dir {
        Some(dir) => {
            let dir = dir.join("lr-find");
            clear_run(&dir)?;
            Some(EventWriter::create(&dir)?)
        }
        None => None,
    };
    let config = TrainConfig {
        tensorboard_dir: None,
        schedule: LrSchedule::Constant,
        early_stopping_patience: None,
        checkpoint_dir: None,
        restore_best: false,
        verbose: false,
        learning_rate: find.start_lr,
        ..config.clone()
    };
    let mut trainer = Trainer::new(network, config.clone(), device)?;
    let model = trainer.history.model.clone();
    let x = train.images_tensor().to_device(device);
    let y = train.labels_tensor().to_device(device);
    let mut augmenter = Augmenter::new(config.augment.clone(), config.seed)?;
    let augment = !config.augment.is_identity();
    let batches = train.len() / bs;
    let mut order: Vec<i64> = Vec::new();
    let mut rng = ChaCha8Rng::seed_from_u64(config.seed);
    let ratio = find.end_lr / find.start_lr;
    let mut found = LrFinder {
        model,
        rates: Vec::new(),
        losses: Vec::new(),
        smoothed: Vec::new(),
        stop_reason: "reached end_lr".into(),
    };
    let interrupt = InterruptGuard::install_own()?;
    trainer.in_training_layout(|t| {
        let (mut average, mut best) = (0.0, f64::INFINITY);
        for step in 0..find.steps {
            if interrupt.is_requested() {
                found.stop_reason = format!("interrupted after {step} of {} steps", find.steps);
                break;
            }
            let b = step % batches;
            if b == 0 {
                order = (0..train.len() as i64).collect();
                order.shuffle(&mut rng);
            }
            let idx = Tensor::from_slice(&order[b * bs..(b + 1) * bs]).to_device(device);
            let mut xb = x.index_select(0, &idx);
            if augment {
                xb = augmenter.apply(&xb)?;
            }
            let yb = y.index_select(0, &idx);
            let lr = find.start_lr * ratio.powf(step as f64 / (find.steps - 1) as f64);
            t.set_learning_rate(lr);
            let loss = match t.train_batch(&xb, &yb) {
                Ok(loss) => loss.double_value(&[]),
                Err(Error::Diverged(_)) => {
                    found.stop_reason = format!("the loss became non-finite at rate {lr:.2e}");
                    break;
                }
                Err(e) => return Err(e),
            };
            average = find.smoothing * average + (1.0 - find.smoothing) * loss;
            let running = average / (1.0 - find.smoothing.powi(step as i32 + 1));
            found.rates.push(lr);
            found.losses.push(loss);
            if let Some(w) = &mut log {
                let step = step as i64 + 1;
                w.scalars(
                    step,
                    &[("lr_find/loss", loss), ("lr_find/learning_rate", lr)],
                )?;
            }
            best = best.min(running);
            if running > find.diverge_factor * best {
                found.stop_reason = format!(
                    "the running average of the loss passed {}x its lowest at rate {lr:.2e}",
                    find.diverge_factor
                );
                break;
            }
        }
        Ok(())
    })?;
    drop(interrupt);
    found.smoothed = centred_average(&found.losses, (find.steps / 30).max(2));
    if let Some(w) = &mut log {
        // TensorBoard's x axis is the step; each step's rate is logged beside its loss.
        for (i, smoothed) in found.smoothed.iter().enumerate() {
            w.scalars(i as i64 + 1, &[("lr_find/loss_smoothed", *smoothed)])?;
        }
        let rate = |r: Option<f64>| r.map_or("none".to_string(), |r| format!("{r:.2e}"));
        w.text(
            "lr_find/suggestion",
            found.rates.len() as i64,
            &format!(
                "steepest descent at {}, lowest loss at {}; {}",
                rate(found.steepest()),
                rate(found.min_loss_rate()),
                found.stop_reason
            ),
        )?;
    }
    Ok(found)
}

/// The mean of `values[i - k ..= i + k]` (cut at both ends) for every `i`.
fn centred_average(values: &[f64], k: usize) -> Vec<f64> {
    (0..values.len())
        .map(|i| {
            let window = &values[i.saturating_sub(k)..(i + k + 1).min(values.len())];
            window.iter().sum::<f64>() / window.len() as f64
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::models::ModelKind;
    use crate::train::trainer::tests::bands;

    #[test]
    fn the_sweep_rises_geometrically_finds_a_descent_and_stops_when_the_loss_blows_up() {
        let config = TrainConfig {
            batch_size: 32,
            model_l2: false,
            ..Default::default()
        };
        let find = LrFindConfig {
            start_lr: 1e-6,
            end_lr: 100.0,
            steps: 60,
            smoothing: 0.9,
            ..Default::default()
        };
        let found = lr_find(
            ModelKind::Cnn4.into(),
            &config,
            &bands(320, 1),
            &find,
            Device::Cpu,
        )
        .unwrap();
        let n = found.rates.len();
        assert!(n >= 10 && n == found.losses.len() && n == found.smoothed.len());
        let step = (100.0f64 / 1e-6).powf(1.0 / 59.0);
        for w in found.rates.windows(2) {
            assert!((w[1] / w[0] - step).abs() < 1e-9 * step);
        }
        assert!(
            n < 60,
            "Adam at rates up to 100 blows up before the end: {}",
            found.stop_reason
        );
        let (steepest, lowest) = (found.steepest().unwrap(), found.min_loss_rate().unwrap());
        assert!(steepest > 1e-6 && steepest < lowest, "{steepest} {lowest}");
        assert_eq!(
            centred_average(&[1.0, 2.0, 3.0, 10.0], 1),
            vec![1.5, 2.0, 5.0, 6.5]
        );
        let first = found.smoothed[0];
        let min = found.smoothed.iter().copied().fold(f64::MAX, f64::min);
        assert!(
            min < first * 0.8,
            "the loss fell somewhere in the sweep: {first} -> {min}"
        );
        let bad = LrFindConfig {
            end_lr: 1e-8,
            ..Default::default()
        };
        assert!(lr_find(
            ModelKind::Cnn4.into(),
            &config,
            &bands(64, 1),
            &bad,
            Device::Cpu
        )
        .is_err());
        assert!(lr_find(
            ModelKind::Cnn4.into(),
            &config,
            &bands(8, 1),
            &find,
            Device::Cpu
        )
        .is_err());
    }
}
