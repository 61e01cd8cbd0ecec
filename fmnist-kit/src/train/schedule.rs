//! How the learning rate changes during a run: the schedule a config names ([`LrSchedule`]).
//! The loop's pieces that apply it are in [`super::callbacks`] (`WarmupCosine` before every
//! step, `PlateauRule` after every epoch). A new schedule is a variant here, a piece there, and
//! its line in [`super::callbacks::for_config`].

use serde::{Deserialize, Serialize};

/// Reduce the learning rate when the validation loss stops improving (Keras `ReduceLROnPlateau`).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct ReduceLrOnPlateau {
    pub factor: f64,
    /// Epochs without improvement before reducing.
    pub patience: usize,
    pub min_lr: f64,
}

/// How the learning rate changes during a run.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub enum LrSchedule {
    /// The configured rate throughout.
    Constant,
    /// Keras's `ReduceLROnPlateau`, checked after every epoch.
    ReduceOnPlateau(ReduceLrOnPlateau),
    /// A linear warm-up from near 0 over `warmup_epochs`, then a half cosine down to `min_lr`
    /// at the end of the last epoch; updated after every batch.
    WarmupCosine { warmup_epochs: f64, min_lr: f64 },
}

impl LrSchedule {
    /// The rate after `step` of `total_steps` optimiser steps (1-based), for a base rate `base`.
    pub fn rate_at(&self, base: f64, step: i64, steps_per_epoch: usize, total_steps: i64) -> f64 {
        match *self {
            LrSchedule::WarmupCosine {
                warmup_epochs,
                min_lr,
            } => {
                let warmup = (warmup_epochs * steps_per_epoch as f64).round() as i64;
                if step <= warmup {
                    return base * step as f64 / warmup.max(1) as f64;
                }
                let span = (total_steps - warmup).max(1) as f64;
                let t = ((step - warmup) as f64 / span).clamp(0.0, 1.0);
                min_lr + 0.5 * (base - min_lr) * (1.0 + (std::f64::consts::PI * t).cos())
            }
            LrSchedule::Constant | LrSchedule::ReduceOnPlateau(_) => base,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warm_up_then_half_a_cosine_that_ends_at_min_lr() {
        let s = LrSchedule::WarmupCosine {
            warmup_epochs: 1.0,
            min_lr: 0.0,
        };
        assert!((s.rate_at(2e-3, 5, 10, 100) - 1e-3).abs() < 1e-12);
        assert!((s.rate_at(2e-3, 10, 10, 100) - 2e-3).abs() < 1e-12);
        assert!((s.rate_at(2e-3, 55, 10, 100) - 1e-3).abs() < 1e-12);
        assert!(s.rate_at(2e-3, 100, 10, 100).abs() < 1e-12);
    }
}
