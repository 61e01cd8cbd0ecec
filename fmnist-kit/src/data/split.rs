//! The seeded 80/20 train/validation split.

use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::Serialize;

use super::image_set::{ImageSet, NUM_CLASSES};
use crate::error::{Error, Result};

/// How to split the training set.
#[derive(Clone, Debug, Serialize)]
pub struct SplitConfig {
    /// Fraction held out for validation (default 0.2, the original's 48,000 / 12,000).
    pub validation_fraction: f64,
    /// Shuffle seed (default 13, the original's).
    pub seed: u64,
    /// Keep each class's share equal in both parts.
    pub stratified: bool,
}

impl Default for SplitConfig {
    fn default() -> Self {
        SplitConfig {
            validation_fraction: 0.2,
            seed: 13,
            stratified: false,
        }
    }
}

/// The two parts of a split and the positions they came from.
#[derive(Clone, Debug)]
pub struct TrainValidationSplit {
    pub train: ImageSet,
    pub validation: ImageSet,
    pub train_indices: Vec<usize>,
    pub validation_indices: Vec<usize>,
}

/// Splits `set` into train and validation parts, deterministically for a given seed.
pub fn train_validation_split(
    set: &ImageSet,
    config: &SplitConfig,
) -> Result<TrainValidationSplit> {
    let f = config.validation_fraction;
    if !(f > 0.0 && f < 1.0) {
        return Err(Error::param(
            "validation_fraction",
            format!("{f} is not strictly between 0 and 1"),
        ));
    }
    let mut rng = ChaCha8Rng::seed_from_u64(config.seed);
    let (mut train_idx, mut val_idx) = (Vec::new(), Vec::new());
    if config.stratified {
        for class in 0..NUM_CLASSES as u8 {
            let mut idx: Vec<usize> = (0..set.len()).filter(|&i| set.labels[i] == class).collect();
            idx.shuffle(&mut rng);
            let n_val = (idx.len() as f64 * f).round() as usize;
            val_idx.extend_from_slice(&idx[..n_val]);
            train_idx.extend_from_slice(&idx[n_val..]);
        }
        train_idx.shuffle(&mut rng);
        val_idx.shuffle(&mut rng);
    } else {
        let mut idx: Vec<usize> = (0..set.len()).collect();
        idx.shuffle(&mut rng);
        let n_val = (set.len() as f64 * f).round() as usize;
        val_idx = idx[..n_val].to_vec();
        train_idx = idx[n_val..].to_vec();
    }
    if train_idx.is_empty() || val_idx.is_empty() {
        return Err(Error::param(
            "validation_fraction",
            format!("{f} of {} images leaves one part empty", set.len()),
        ));
    }
    Ok(TrainValidationSplit {
        train: set.select(&train_idx)?,
        validation: set.select(&val_idx)?,
        train_indices: train_idx,
        validation_indices: val_idx,
    })
}
