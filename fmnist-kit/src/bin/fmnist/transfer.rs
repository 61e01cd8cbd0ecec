//! `embed`, `transfer`, `bench embed`: ImageNet backbones.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use clap::ValueEnum;
use serde_json::json;

use fmnist_kit::data;
use fmnist_kit::models::{Backbone, ModelKind};
use fmnist_kit::run::RunOptions;
use fmnist_kit::train::{Precision, Recipe};
use fmnist_kit::transfer::{FeatureExtractor, TransferRun, Weights};
use fmnist_kit::util::{progress_line, progress_to_stderr, write_atomic};
use fmnist_kit::ProfileName;

use crate::common::{data_path, print_json, profile_arg, Globals};

#[derive(clap::Args)]
pub(crate) struct EmbedArgs {
    /// The ImageNet backbone.
    #[arg(long, value_enum)]
    backbone: Backbone,
    /// A weights file, or `random` [default: the backbone's ImageNet weights]
    #[arg(long)]
    weights: Option<String>,
    /// Side the images are resized to [default: the profile's]
    #[arg(long)]
    size: Option<usize>,
    /// Sizes [default: $FMNIST_PROFILE or quick]
    #[arg(long, value_enum)]
    profile: Option<ProfileName>,
    #[arg(long, value_enum, default_value_t = SplitArg::Test)]
    split: SplitArg,
    /// The first N images of the split [default: all]
    #[arg(long)]
    first: Option<usize>,
    /// The CSV to write.
    #[arg(long)]
    out: PathBuf,
    #[arg(long)]
    data: Option<PathBuf>,
    #[arg(long)]
    json: bool,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum SplitArg {
    Train,
    Test,
}

#[derive(clap::Args)]
pub(crate) struct TransferArgs {
    /// The ImageNet backbone.
    #[arg(long, value_enum)]
    backbone: Backbone,
    /// A weights file, or `random` [default: the backbone's ImageNet weights]
    #[arg(long)]
    weights: Option<String>,
    /// Sizes and epochs [default: $FMNIST_PROFILE or quick]
    #[arg(long, value_enum)]
    profile: Option<ProfileName>,
    /// Side the images are resized to [default: the profile's]
    #[arg(long)]
    size: Option<usize>,
    /// Fine-tuning settings (`original`: SGD with Nesterov momentum at 1e-3)
    #[arg(long, value_enum, default_value_t = Recipe::Tuned)]
    recipe: Recipe,
    /// Fine-tuning epochs [default: the profile's]
    #[arg(long)]
    epochs: Option<usize>,
    /// Checkpoint folder [default: artifacts/<profile>/<backbone>]
    #[arg(long)]
    out: Option<PathBuf>,
    /// Keep a finished stage 1 and continue fine-tuning from the checkpoint.
    #[arg(long)]
    resume: bool,
    #[arg(long, default_value_t = 13)]
    seed: u64,
    #[arg(long)]
    data: Option<PathBuf>,
    #[arg(long)]
    json: bool,
}

pub(crate) fn weights_arg(backbone: Backbone, weights: &Option<String>) -> Result<Weights> {
    Ok(match weights {
        Some(w) => Weights::parse(w),
        None => Weights::imagenet(backbone)?,
    })
}

pub(crate) fn run_embed(a: EmbedArgs, g: Globals) -> Result<()> {
    let profile = profile_arg(a.profile)?;
    let kind = ModelKind::for_backbone(a.backbone);
    let size = a
        .size
        .or(profile.sizes(kind).input_size)
        .unwrap_or(a.backbone.min_input());
    let weights = weights_arg(a.backbone, &a.weights)?;
    let mut extractor = FeatureExtractor::new(a.backbone, &weights, size, g.device)
        .with_context(|| format!("preparing the {} trunk", a.backbone.title()))?;
    extractor.set_precision(g.precision.unwrap_or(Precision::Fp32));
    let path = data_path(a.data);
    let d = data::load(&path).with_context(|| format!("loading {}", path.display()))?;
    let (split, name) = match a.split {
        SplitArg::Train => (&d.train, "train"),
        SplitArg::Test => (&d.test, "test"),
    };
    let n = a.first.unwrap_or(split.len());
    if n == 0 || n > split.len() {
        bail!(
            "--first {n} is outside 1..={} (images in the {name} split)",
            split.len()
        );
    }
    let set = split.first(n);
    let start = Instant::now();
    let features = extractor.extract(&set)?;
    let seconds = start.elapsed().as_secs_f64();
    let values = Vec::<f32>::try_from(features.flatten(0, -1))?;
    let width = a.backbone.feature_size() as usize;
    let mut csv = String::with_capacity(n * width * 10);
    csv.push_str("index");
    for j in 0..width {
        csv.push_str(&format!(",f{j}"));
    }
    csv.push('\n');
    for (i, row) in values.chunks(width).enumerate() {
        csv.push_str(&i.to_string());
        for v in row {
            csv.push(',');
            csv.push_str(&v.to_string());
        }
        csv.push('\n');
    }
    write_atomic(&a.out, csv.as_bytes()).with_context(|| format!("writing {}", a.out.display()))?;
    if a.json {
        print_json(&json!({
            "backbone": a.backbone, "weights": extractor.weights, "image_size": size, "split": name,
            "images": n, "features": width, "seconds": seconds, "images_per_s": n as f64 / seconds,
            "out": a.out, "threads": tch::get_num_threads(),
        }))
    } else {
        println!(
            "{} ({}) at {size} px: {n} {name} images -> {} features each in {seconds:.1} s ({:.0} images/s); wrote {}",
            a.backbone.title(),
            extractor.weights.label(),
            width,
            n as f64 / seconds,
            a.out.display()
        );
        Ok(())
    }
}

pub(crate) fn run_transfer(a: TransferArgs, g: Globals) -> Result<()> {
    let profile = profile_arg(a.profile)?;
    let kind = ModelKind::for_backbone(a.backbone);
    let path = data_path(a.data);
    let d = data::load(&path).with_context(|| format!("loading {}", path.display()))?;
    // Progress goes to standard error with --json, which keeps standard output for the JSON.
    progress_to_stderr(a.json);
    let options = RunOptions {
        weights: Some(weights_arg(a.backbone, &a.weights)?),
        image_size: a.size,
        recipe: Some(a.recipe),
        epochs: a.epochs,
        out: a.out,
        resume: a.resume,
        verbose: true,
        device: Some(g.device),
        precision: g.precision,
        seed: a.seed,
        tensorboard: g.tensorboard,
        ..Default::default()
    };
    let mut run = TransferRun::prepare(kind, &profile, &d, options)?;
    progress_line(&run.describe());
    let result = run.fit()?;
    if a.json {
        let mut v = serde_json::to_value(&result)?;
        v["checkpoint"] = json!(run.checkpoints.best());
        print_json(&v)
    } else {
        println!(
            "{}: frozen trunk + head {:.4}, fine-tuned {:.4} test accuracy on {} images; best weights in {}",
            a.backbone.title(),
            result.transfer.frozen_test_accuracy,
            result.run.test_accuracy,
            result.run.test_images,
            run.checkpoints.best().display()
        );
        Ok(())
    }
}

pub(crate) fn bench_embed(
    backbone: Backbone,
    size: usize,
    images: usize,
    batch: usize,
    data: Option<PathBuf>,
    json_out: bool,
    g: Globals,
) -> Result<()> {
    let path = data_path(data);
    let d = data::load(&path).with_context(|| format!("loading {}", path.display()))?;
    if images == 0 || images > d.test.len() || batch == 0 {
        bail!(
            "--images must lie in 1..={} and --batch be at least 1",
            d.test.len()
        );
    }
    let set = d.test.first(images);
    let device = g.device;
    let mut extractor =
        FeatureExtractor::new(backbone, &Weights::Random { seed: 1 }, size, device)?;
    extractor.batch_size = batch;
    extractor.set_precision(g.precision.unwrap_or(Precision::Fp32));
    let _ = extractor.extract(&set.first(batch.min(images)))?; // warm-up
    let mut best = f64::MAX;
    for _ in 0..3 {
        let start = Instant::now();
        let _ = extractor.extract(&set)?;
        best = best.min(start.elapsed().as_secs_f64());
    }
    let rate = images as f64 / best;
    if json_out {
        print_json(&json!({
            "backbone": backbone, "size": size, "images": images, "batch": batch,
            "threads": tch::get_num_threads(), "device": format!("{device:?}"), "images_per_s": rate,
        }))
    } else {
        println!(
            "{} at {size} px, batch {batch}, {device:?}, {} threads: {rate:.0} images/s",
            backbone.title(),
            tch::get_num_threads()
        );
        Ok(())
    }
}
