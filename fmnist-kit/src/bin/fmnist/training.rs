//! `summary`, `train`, `evaluate`, `features`, `bench train`.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use clap::ValueEnum;
use serde_json::json;

use fmnist_kit::data;
use fmnist_kit::models::ModelKind;
use fmnist_kit::run::{RunOptions, TrainingRun};
use fmnist_kit::train::{self, NetworkFile, Precision, Recipe, TrainedNetwork, Trainer};
use fmnist_kit::util::{progress_line, progress_to_stderr, write_atomic};
use fmnist_kit::ProfileName;

use crate::common::{data_path, print_json, profile_arg, Globals};

#[derive(clap::Args)]
pub(crate) struct TrainArgs {
    /// The network.
    #[arg(long, value_enum)]
    model: ModelKind,
    /// Sizes and epochs [default: $FMNIST_PROFILE or quick]
    #[arg(long, value_enum)]
    profile: Option<ProfileName>,
    /// Override the profile's epoch count.
    #[arg(long)]
    epochs: Option<usize>,
    /// Override the profile's batch size.
    #[arg(long)]
    batch_size: Option<usize>,
    /// Override the recipe's (peak) learning rate.
    #[arg(long)]
    lr: Option<f64>,
    /// Override the recipe's label smoothing (0 = plain cross-entropy).
    #[arg(long)]
    label_smoothing: Option<f64>,
    /// Score with test-time flip (on) or without (off) [default: the recipe's]; network.json
    /// records it for evaluate and predict.
    #[arg(long, value_enum)]
    test_time_flip: Option<Switch>,
    /// Checkpoint folder [default: artifacts/<profile>/<model>]
    #[arg(long)]
    out: Option<PathBuf>,
    /// Continue from the last checkpoint in the output folder when it holds this same run (the
    /// same network, settings but the epoch count, seed and images; more epochs extend a
    /// finished run); another run there starts afresh.
    #[arg(long)]
    resume: bool,
    /// Training settings [default: the profile's, tuned]
    #[arg(long, value_enum)]
    recipe: Option<Recipe>,
    /// Train without augmentation.
    #[arg(long)]
    no_augment: bool,
    #[arg(long, default_value_t = 13)]
    seed: u64,
    #[arg(long)]
    data: Option<PathBuf>,
    #[arg(long)]
    json: bool,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum Switch {
    On,
    Off,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum LayoutArg {
    Auto,
    Contiguous,
    ChannelsLast,
}

pub(crate) fn run_summary(kind: ModelKind, json_out: bool) -> Result<()> {
    let summary = TrainedNetwork::untrained(kind.into(), tch::Device::Cpu)?.summary()?;
    if json_out {
        print_json(&serde_json::to_value(&summary)?)
    } else {
        println!("{summary}");
        Ok(())
    }
}

pub(crate) fn run_train(a: TrainArgs, g: Globals) -> Result<()> {
    let profile = profile_arg(a.profile)?;
    let path = data_path(a.data);
    let d = data::load(&path).with_context(|| format!("loading {}", path.display()))?;
    // Progress goes to standard error with --json, which keeps standard output for the JSON.
    progress_to_stderr(a.json);
    let options = RunOptions {
        recipe: a.recipe,
        epochs: a.epochs,
        batch_size: a.batch_size,
        learning_rate: a.lr,
        label_smoothing: a.label_smoothing,
        test_time_flip: a.test_time_flip.map(|s| s == Switch::On),
        augment: !a.no_augment,
        seed: a.seed,
        out: a.out,
        resume: a.resume,
        verbose: true,
        device: Some(g.device),
        precision: g.precision,
        tensorboard: g.tensorboard,
        ..Default::default()
    };
    let mut run = TrainingRun::prepare(a.model, &profile, &d, options)?;
    progress_line(&run.describe());
    progress_line(&run.trainer.config.to_string());
    let result = run.fit()?;
    let mut v = serde_json::to_value(&result)?;
    v["checkpoint"] = json!(run.checkpoints.best());
    v["history"] = json!(run.checkpoints.history());
    if a.json {
        print_json(&v)
    } else {
        println!(
            "test accuracy {:.4} (loss {:.4}) on {} images; {:.0} s of training; best weights in {}",
            result.test_accuracy,
            result.test_loss,
            result.test_images,
            result.train_seconds,
            run.checkpoints.best().display()
        );
        Ok(())
    }
}

/// The trained network in `checkpoint` (a checkpoint folder or a weights file), of kind
/// `model` or the one named beside it.
pub(crate) fn open_checkpoint(
    checkpoint: &Path,
    model: Option<ModelKind>,
    device: tch::Device,
) -> Result<(ModelKind, TrainedNetwork)> {
    let net = match model {
        None => match TrainedNetwork::load(checkpoint, device) {
            Err(e @ fmnist_kit::Error::UnnamedNetwork { .. }) => {
                bail!("{e}: pass --model NAME")
            }
            other => other?,
        },
        Some(kind) => {
            // The network.json beside the weights, when it names this network; else its defaults.
            let weights = if checkpoint.is_dir() {
                train::CheckpointDir(checkpoint.to_path_buf()).best()
            } else {
                checkpoint.to_path_buf()
            };
            let (network, test_time_flip) = match NetworkFile::beside(&weights)? {
                Some(n) if n.model == kind => (
                    n.network(&weights.with_file_name("network.json"))?,
                    n.test_time_flip,
                ),
                Some(n) => bail!(
                    "{}: describes a {} network, not a {kind}",
                    weights.with_file_name("network.json").display(),
                    n.model
                ),
                None => (kind.into(), false),
            };
            let mut net = TrainedNetwork::untrained(network, device)?;
            net.test_time_flip = test_time_flip;
            net.load_weights(&weights)
                .with_context(|| format!("loading {} as a {kind} checkpoint", weights.display()))?;
            net
        }
    };
    Ok((net.kind, net))
}

pub(crate) fn run_evaluate(
    checkpoint: &Path,
    model: Option<ModelKind>,
    predictions: Option<PathBuf>,
    data: Option<PathBuf>,
    json_out: bool,
    g: Globals,
) -> Result<()> {
    let (kind, mut net) = open_checkpoint(checkpoint, model, g.device)?;
    net.set_precision(g.precision.unwrap_or(Precision::Fp32));
    let path = data_path(data);
    let d = data::load(&path).with_context(|| format!("loading {}", path.display()))?;
    let preds = net.predict(&d.test)?;
    let report = preds.report()?;
    let cm = preds.confusion_matrix()?;
    let log_loss = preds.log_loss()?;
    if let Some(p) = &predictions {
        write_atomic(p, preds.to_csv().as_bytes())
            .with_context(|| format!("writing {}", p.display()))?;
    }
    if json_out {
        let mut v = report.to_json();
        v["confusion_matrix"] = json!(cm);
        v["log_loss"] = json!(log_loss);
        v["model"] = json!(kind);
        v["checkpoint"] = json!(checkpoint);
        v["images"] = json!(d.test.len());
        print_json(&v)
    } else {
        println!(
            "{kind} checkpoint {} on {} test images",
            checkpoint.display(),
            d.test.len()
        );
        print!("{}", report.to_text());
        println!("log loss {log_loss:.4}");
        Ok(())
    }
}

#[allow(clippy::too_many_arguments)]
pub(crate) fn run_features(
    checkpoint: &Path,
    model: Option<ModelKind>,
    image: usize,
    from_test: bool,
    class: Option<usize>,
    out: &Path,
    data: Option<PathBuf>,
    json_out: bool,
    g: Globals,
) -> Result<()> {
    use fmnist_kit::features;
    let device = g.device;
    let (kind, net) = open_checkpoint(checkpoint, model, device)?;
    let path = data_path(data);
    let d = data::load(&path).with_context(|| format!("loading {}", path.display()))?;
    let set = if from_test { &d.test } else { &d.train };
    if image >= set.len() {
        bail!(
            "--image {image} is past the end of the {} set ({} images)",
            if from_test { "test" } else { "training" },
            set.len()
        );
    }
    let mut written = Vec::new();
    for (i, (name, act)) in features::feature_maps(net.activations(set, image)?)
        .iter()
        .enumerate()
    {
        let file = out.join(format!("{:02}-{name}.png", i + 1));
        features::feature_map_grid(name, act)?
            .save(&file)
            .with_context(|| format!("writing {}", file.display()))?;
        written.push(file);
    }
    let layer = kind.spec().grad_cam_layer;
    let cam = features::grad_cam(net.model(), set, image, class, layer, device)?;
    let title = format!(
        "{} {} ({:.0}%) / true {}",
        if class.is_some() { "class" } else { "pred" },
        data::class_name(cam.class),
        cam.probability * 100.0,
        data::class_name(set.labels[image] as usize)
    );
    let cam_file = out.join("grad-cam.png");
    features::grad_cam_overlay(set, image, &cam, 6, &title)?
        .save(&cam_file)
        .with_context(|| format!("writing {}", cam_file.display()))?;
    written.push(cam_file);
    if json_out {
        print_json(
            &json!({ "model": kind, "image": image, "files": written, "grad_cam_layer": cam.layer,
                            "predicted": cam.class, "probability": cam.probability }),
        )
    } else {
        for f in &written {
            println!("wrote {}", f.display());
        }
        Ok(())
    }
}

pub(crate) fn bench_train(
    kind: ModelKind,
    steps: usize,
    batch_size: Option<usize>,
    layout: LayoutArg,
    data: Option<PathBuf>,
    json_out: bool,
    g: Globals,
) -> Result<()> {
    let path = data_path(data);
    let d = data::load(&path).with_context(|| format!("loading {}", path.display()))?;
    // The original's pipeline (its augmentation, L2 penalties and batch sizes), as the peer.
    let original_batch = kind.spec().original_batch_size;
    let mut config = train::Recipe::Original.config(kind, 1, original_batch);
    if let Some(b) = batch_size {
        config.batch_size = b;
    }
    match layout {
        LayoutArg::Auto => {}
        LayoutArg::Contiguous => config.channels_last = false,
        LayoutArg::ChannelsLast => config.channels_last = true,
    }
    config.verbose = false;
    config.precision = g.precision.unwrap_or(Precision::Fp32);
    let device = g.device;
    let set = d
        .train
        .first((config.batch_size * steps.max(8)).min(d.train.len()));
    // Rounds alternate between the two settings and the best of each is kept, so that neither
    // pays for warming up the machine and the machine's other work only ever slows a round down.
    let mut plain = Trainer::new(kind, config.clone(), device)?;
    let mut augmented = Trainer::new(kind, config.clone(), device)?;
    let (mut noaug, mut aug) = (0.0f64, 0.0f64);
    for _ in 0..3 {
        noaug = noaug.max(train::measure_throughput(&mut plain, &set, steps, false)?);
        aug = aug.max(train::measure_throughput(
            &mut augmented,
            &set,
            steps,
            true,
        )?);
    }
    let share = 1.0 - aug / noaug;
    if json_out {
        print_json(&json!({
            "model": kind, "batch_size": config.batch_size, "steps": steps, "device": format!("{device:?}"),
            "threads": tch::get_num_threads(), "channels_last": config.channels_last,
            "images_per_s_noaug": noaug, "images_per_s_aug": aug,
            "augmentation_share": share,
        }))
    } else {
        println!(
            "{kind}, batch {}, {device:?}, {} threads, {}: {noaug:.0} images/s without augmentation, {aug:.0} with (augmentation {:.1}% of a step)",
            config.batch_size,
            tch::get_num_threads(),
            if config.channels_last { "channels-last" } else { "contiguous" },
            share * 100.0
        );
        Ok(())
    }
}

#[derive(clap::Args)]
pub(crate) struct LrFindArgs {
    /// The network.
    #[arg(long, value_enum)]
    model: ModelKind,
    /// Sizes and training settings [default: $FMNIST_PROFILE or quick]
    #[arg(long, value_enum)]
    profile: Option<ProfileName>,
    /// Training settings (optimiser, batch size, regularisation, augmentation) [default: the profile's]
    #[arg(long, value_enum)]
    recipe: Option<Recipe>,
    /// Override the profile's batch size.
    #[arg(long)]
    batch_size: Option<usize>,
    /// Steps of the sweep.
    #[arg(long, default_value_t = 200)]
    steps: usize,
    /// The rate of the first step.
    #[arg(long, default_value_t = 1e-7)]
    start_lr: f64,
    /// The rate of the last step.
    #[arg(long, default_value_t = 10.0)]
    end_lr: f64,
    /// Write the loss-against-rate figure here (PNG).
    #[arg(long)]
    png: Option<PathBuf>,
    #[arg(long, default_value_t = 13)]
    seed: u64,
    #[arg(long)]
    data: Option<PathBuf>,
    #[arg(long)]
    json: bool,
}

pub(crate) fn run_lr_find(a: LrFindArgs, g: Globals) -> Result<()> {
    let mut profile = profile_arg(a.profile)?;
    if let Some(r) = a.recipe {
        profile.recipe = r;
    }
    let path = data_path(a.data);
    let d = data::load(&path).with_context(|| format!("loading {}", path.display()))?;
    let sets = profile.sets(a.model, &d)?;
    let mut config = profile.train_config(a.model);
    config.seed = a.seed;
    if let Some(p) = g.precision {
        config.precision = p;
    }
    // Logged in <the network's checkpoint folder>/tensorboard/lr-find.
    config.tensorboard_dir = g
        .tensorboard
        .then(|| profile.checkpoint_dir(a.model).tensorboard());
    if let Some(b) = a.batch_size {
        config.batch_size = b;
    }
    let network = profile.network(a.model)?;
    let find = train::LrFindConfig {
        start_lr: a.start_lr,
        end_lr: a.end_lr,
        steps: a.steps,
        ..Default::default()
    };
    progress_to_stderr(a.json);
    progress_line(&format!(
        "lr-find: {} on {} training images, {} recipe, batch {}, {} steps from {:.0e} to {:.0e}",
        a.model,
        sets.train.len(),
        profile.recipe,
        config.batch_size,
        find.steps,
        find.start_lr,
        find.end_lr
    ));
    let found = train::lr_find(network, &config, &sets.train, &find, g.device)?;
    if let Some(png) = &a.png {
        fmnist_kit::viz::lr_finder_figure(&found)?.save(png)?;
    }
    if a.json {
        let mut v = serde_json::to_value(&found)?;
        v["steepest"] = json!(found.steepest());
        v["min_loss_rate"] = json!(found.min_loss_rate());
        v["recipe_learning_rate"] = json!(config.learning_rate);
        return print_json(&v);
    }
    let rate = |r: Option<f64>| {
        r.map_or("none (the sweep was too short)".into(), |r| {
            format!("{r:.2e}")
        })
    };
    println!(
        "{}: steepest descent at {}, lowest loss at {}; the {} recipe's peak rate is {:.2e}; {} steps ({})",
        a.model,
        rate(found.steepest()),
        rate(found.min_loss_rate()),
        profile.recipe,
        config.learning_rate,
        found.rates.len(),
        found.stop_reason
    );
    if let Some(png) = &a.png {
        println!("figure: {}", png.display());
    }
    Ok(())
}
