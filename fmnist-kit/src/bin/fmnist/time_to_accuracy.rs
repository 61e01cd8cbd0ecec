//! `bench tta`: trains a network with its profile's recipe and scores the whole test set after
//! every epoch with the clock stopped, so that `scripts/bench_tta.py` can print the training
//! seconds to reach an accuracy beside the PyTorch peer trained with the same recipe.

use std::path::PathBuf;

use anyhow::{Context, Result};
use serde_json::json;

use fmnist_kit::data;
use fmnist_kit::models::ModelKind;
use fmnist_kit::train::Trainer;
use fmnist_kit::util::{progress_line, progress_to_stderr};
use fmnist_kit::ProfileName;

use crate::common::{data_path, print_json, profile_arg, Globals};

#[derive(clap::Args)]
pub(crate) struct TimeToAccuracyArgs {
    /// The network.
    #[arg(long, value_enum)]
    model: ModelKind,
    /// The recipe, epochs and sizes [default: $FMNIST_PROFILE or quick]
    #[arg(long, value_enum)]
    profile: Option<ProfileName>,
    #[arg(long, default_value_t = 13)]
    seed: u64,
    #[arg(long)]
    data: Option<PathBuf>,
}

/// Prints JSON: the settings (`config`, as [`fmnist_kit::train::TrainConfig`] serialises), the
/// training images, and per epoch the training seconds so far (the optimiser steps only, no
/// validation nor test scoring) and the test accuracy of the weights at that point; and the
/// positions of the training images in the official training set (`train_indices`).
pub(crate) fn run_time_to_accuracy(a: TimeToAccuracyArgs, g: Globals) -> Result<()> {
    let profile = profile_arg(a.profile)?;
    let path = data_path(a.data);
    let d = data::load(&path).with_context(|| format!("loading {}", path.display()))?;
    // Standard output is for the JSON.
    progress_to_stderr(true);
    let sets = profile.sets(a.model, &d)?;
    // The positions in the official training set of the images trained on, for the peer.
    let train_indices = &d.split()?.train_indices[..sets.train.len()];
    let mut config = profile.train_config(a.model);
    config.seed = a.seed;
    if let Some(p) = g.precision {
        config.precision = p;
    }
    config.verbose = false;
    config.progress_seconds = 0.0;
    let network = profile.network(a.model)?;
    let network_json = network.settings_json();
    let mut trainer = Trainer::new(network, config.clone(), g.device)?;
    let bf16 = trainer.trains_in_bf16();
    let mut epochs = Vec::new();
    let mut seconds = 0.0;
    for epoch in 1..=config.epochs {
        trainer.fit_for(&sets.train, &sets.validation, 1)?;
        let Some(record) = trainer.history.epochs.last() else {
            break;
        };
        seconds += sets.train.len() as f64 / record.images_per_s;
        let test = trainer.evaluate(&d.test)?;
        progress_line(&format!(
            "{} epoch {epoch}: {seconds:.0} s of training, test accuracy {:.4}",
            a.model, test.accuracy
        ));
        epochs.push(json!({ "epoch": epoch, "train_seconds": seconds,
                            "test_accuracy": test.accuracy, "val_accuracy": record.val_accuracy }));
    }
    print_json(&json!({
        "model": a.model, "profile": profile.name, "seed": a.seed,
        "train_images": sets.train.len(), "test_images": d.test.len(),
        "threads": tch::get_num_threads(), "device": format!("{:?}", g.device),
        "config": config, "settings": config.to_string(), "network": network_json,
        "bf16": bf16, "epochs": epochs,
        "train_indices": train_indices,
    }))
}
