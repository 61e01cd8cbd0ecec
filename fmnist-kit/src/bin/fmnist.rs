//! `fmnist`: the kit's command-line tool. `fmnist --help` lists the commands.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand, ValueEnum};
use serde_json::json;

use fmnist_kit::data::{self, CachePolicy, ImageSet, CLASS_NAMES};
use fmnist_kit::models::{Backbone, ModelKind};
use fmnist_kit::run::{RunOptions, TrainingRun};
use fmnist_kit::train::{self, NetworkFile, TrainedNetwork, Trainer};
use fmnist_kit::transfer::{FeatureExtractor, TransferOptions, TransferRun, Weights};
use fmnist_kit::tsne::{self, TsneConfig, TsneInit, TsneMethod};
use fmnist_kit::util::write_atomic;
use fmnist_kit::viz::ClassScatter;
use fmnist_kit::{Profile, ProfileName};

#[derive(Parser)]
#[command(
    name = "fmnist",
    version,
    about = "Fashion-MNIST workbench: data, t-SNE and more (see README.md)"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Build data/data.tar.gz (CSV members) from the official idx files, reproducibly.
    PrepareData {
        /// Folder holding the four idx .gz files.
        #[arg(long, default_value = data::DEBIAN_SOURCE)]
        source: PathBuf,
        /// Output tarball.
        #[arg(long, default_value = "data/data.tar.gz")]
        out: PathBuf,
        /// Fail (leaving OUT untouched) unless the result has this sha256.
        #[arg(long)]
        expect_sha256: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Rows, class counts and pixel statistics of a data file.
    DataInfo {
        /// data.tar.gz or a folder of idx files [default: $FMNIST_DATA or data/data.tar.gz]
        #[arg(long)]
        data: Option<PathBuf>,
        /// Neither read nor write the parsed-data cache.
        #[arg(long)]
        no_cache: bool,
        #[arg(long)]
        json: bool,
    },
    /// Embed training images in 2-D with t-SNE and score the embedding by 10-NN accuracy.
    Tsne(TsneArgs),
    /// Layers, output shapes and trainable parameters of a network (like Keras's summary()).
    Summary {
        /// The network (cnn4, resnet).
        #[arg(long, value_parser = parse_model)]
        model: ModelKind,
        #[arg(long)]
        json: bool,
    },
    /// Train a network on the 80/20 split, keep the best checkpoint, report test accuracy.
    Train(TrainArgs),
    /// Write one PNG per layer (feature maps, 16 channels per row) and a Grad-CAM overlay for one image.
    Features {
        #[arg(long)]
        checkpoint: PathBuf,
        /// The network [default: the "model" of result.json or state.json beside the checkpoint]
        #[arg(long, value_parser = parse_model)]
        model: Option<ModelKind>,
        /// Position of the image in its set (the original showed training image 2018).
        #[arg(long)]
        image: usize,
        /// Take the image from the test set instead of the training set.
        #[arg(long)]
        test: bool,
        /// Class Grad-CAM explains (0-9) [default: the predicted class]
        #[arg(long)]
        class: Option<usize>,
        #[arg(long, default_value = "out/features")]
        out: PathBuf,
        #[arg(long)]
        data: Option<PathBuf>,
        #[arg(long)]
        json: bool,
    },
    /// Evaluate a checkpoint on the 10,000 test images: classification report (scikit-learn's
    /// numbers and layout), confusion matrix, log loss; optionally every prediction as CSV.
    Evaluate {
        #[arg(long)]
        checkpoint: PathBuf,
        /// The network [default: the "model" of result.json or state.json beside the checkpoint]
        #[arg(long, value_parser = parse_model)]
        model: Option<ModelKind>,
        /// Write `index,label,predicted,p0,...,p9` rows (official test order) here.
        #[arg(long)]
        predictions: Option<PathBuf>,
        #[arg(long)]
        data: Option<PathBuf>,
        #[arg(long)]
        json: bool,
    },
    /// Pooled features of an ImageNet backbone's trunk (evaluation mode) for the first N images
    /// of a split, in the official order: CSV `index,f0,f1,...`.
    Embed(EmbedArgs),
    /// Transfer learning from ImageNet in two stages (the original's recipe or a tuned one):
    /// a head on the frozen trunk's cached features, then fine-tuning.
    Transfer(TransferArgs),
    /// Benchmarks that print figures (used by `make bench`).
    Bench {
        #[command(subcommand)]
        what: BenchCommand,
    },
}

#[derive(clap::Args)]
struct TsneArgs {
    /// data.tar.gz or a folder of idx files [default: $FMNIST_DATA or data/data.tar.gz]
    #[arg(long)]
    data: Option<PathBuf>,
    /// Embed the first N images.
    #[arg(long, default_value_t = 5000)]
    n: usize,
    /// Images to take the first N from: the training set, or training then test set (70,000).
    #[arg(long, value_enum, default_value_t = Pool::Train)]
    pool: Pool,
    /// Seed (used by the random initialisation).
    #[arg(long, default_value_t = 13)]
    seed: u64,
    #[arg(long, default_value_t = 30.0)]
    perplexity: f32,
    #[arg(long, default_value_t = 1000)]
    epochs: usize,
    /// Learning rate [default: N, at least 200]
    #[arg(long)]
    learning_rate: Option<f32>,
    /// Barnes-Hut below 20,000 points, FIt-SNE above (auto), or either.
    #[arg(long, value_enum, default_value_t = Method::Auto)]
    method: Method,
    /// Barnes-Hut accuracy/speed trade-off (smaller: more exact).
    #[arg(long, default_value_t = 0.5)]
    theta: f32,
    #[arg(long, value_enum, default_value_t = Init::Pca)]
    init: Init,
    /// Write the scatter plot here.
    #[arg(long)]
    png: Option<PathBuf>,
    /// Write `index,label,x,y` rows here.
    #[arg(long)]
    embedding_out: Option<PathBuf>,
    #[arg(long)]
    json: bool,
}

#[derive(clap::Args)]
struct TrainArgs {
    /// The network (cnn4, resnet).
    #[arg(long, value_parser = parse_model)]
    model: ModelKind,
    /// Sizes and epochs: smoke, quick or full [default: $FMNIST_PROFILE or quick]
    #[arg(long)]
    profile: Option<String>,
    /// Override the profile's epoch count.
    #[arg(long)]
    epochs: Option<usize>,
    /// Override the profile's batch size.
    #[arg(long)]
    batch_size: Option<usize>,
    /// Checkpoint folder [default: artifacts/<profile>/<model>]
    #[arg(long)]
    out: Option<PathBuf>,
    /// Continue from the last checkpoint in the output folder.
    #[arg(long)]
    resume: bool,
    /// Training settings: `tuned` (warm-up + cosine, weight decay) or `original` (the original
    /// project's) [default: the profile's, tuned]
    #[arg(long)]
    recipe: Option<String>,
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

#[derive(clap::Args)]
struct EmbedArgs {
    /// inception-v3 or efficientnet-lite0.
    #[arg(long, value_parser = parse_backbone)]
    backbone: Backbone,
    /// A weights file, or `random` [default: the backbone's ImageNet weights]
    #[arg(long)]
    weights: Option<String>,
    /// Side the images are resized to [default: the profile's]
    #[arg(long)]
    size: Option<usize>,
    /// Sizes: smoke, quick or full [default: $FMNIST_PROFILE or quick]
    #[arg(long)]
    profile: Option<String>,
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
enum SplitArg {
    Train,
    Test,
}

#[derive(clap::Args)]
struct TransferArgs {
    /// inception-v3 or efficientnet-lite0.
    #[arg(long, value_parser = parse_backbone)]
    backbone: Backbone,
    /// A weights file, or `random` [default: the backbone's ImageNet weights]
    #[arg(long)]
    weights: Option<String>,
    /// Sizes and epochs: smoke, quick or full [default: $FMNIST_PROFILE or quick]
    #[arg(long)]
    profile: Option<String>,
    /// Side the images are resized to [default: the profile's]
    #[arg(long)]
    size: Option<usize>,
    /// `tuned` or `original` (SGD with Nesterov momentum at 1e-3 for fine-tuning)
    #[arg(long, default_value = "tuned")]
    recipe: String,
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

/// A backbone by name (`inception-v3`, `efficientnet-lite0`).
fn parse_backbone(s: &str) -> std::result::Result<Backbone, String> {
    s.parse::<Backbone>().map_err(|e| e.to_string())
}

fn profile_arg(p: &Option<String>) -> Result<Profile> {
    Ok(match p {
        Some(p) => Profile::named(p.parse::<ProfileName>()?),
        None => Profile::from_env()?,
    })
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum LayoutArg {
    Auto,
    Contiguous,
    ChannelsLast,
}

/// A network named as in the kit's model table (`cnn4`, `resnet`).
fn parse_model(s: &str) -> std::result::Result<ModelKind, String> {
    s.parse::<ModelKind>().map_err(|e| e.to_string())
}

#[derive(Subcommand)]
enum BenchCommand {
    /// Training throughput (images/s) with and without the model's original augmentation.
    Train {
        /// The network (cnn4, resnet).
        #[arg(long, value_parser = parse_model)]
        model: ModelKind,
        /// Timed steps per measurement (after 3 warm-up steps).
        #[arg(long, default_value_t = 20)]
        steps: usize,
        /// Batch size [default: the original's (the model table's), 256 for cnn4 and 32 for resnet]
        #[arg(long)]
        batch_size: Option<usize>,
        /// Memory layout of the convolutions: default, channels-last, or the kit's choice.
        #[arg(long, value_enum, default_value_t = LayoutArg::Auto)]
        layout: LayoutArg,
        #[arg(long)]
        data: Option<PathBuf>,
        #[arg(long)]
        json: bool,
    },
    /// Load times of the tarball: parsing (no cache), first load (writes the cache), cached load.
    Load {
        #[arg(long)]
        data: Option<PathBuf>,
        /// Repetitions of each measurement (the best is reported).
        #[arg(long, default_value_t = 3)]
        repeat: usize,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum Pool {
    Train,
    All,
}

#[derive(Clone, Copy, ValueEnum)]
enum Method {
    Auto,
    Fitsne,
    BarnesHut,
}

#[derive(Clone, Copy, ValueEnum)]
enum Init {
    Pca,
    Spectral,
    Random,
}

fn main() {
    if let Err(e) = run(Cli::parse()) {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}

fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::PrepareData {
            source,
            out,
            expect_sha256,
            json,
        } => prepare_data(&source, &out, expect_sha256.as_deref(), json),
        Command::DataInfo {
            data,
            no_cache,
            json,
        } => data_info(data, no_cache, json),
        Command::Tsne(args) => run_tsne(args),
        Command::Summary { model, json } => run_summary(model, json),
        Command::Train(args) => run_train(args),
        Command::Features {
            checkpoint,
            model,
            image,
            test,
            class,
            out,
            data,
            json,
        } => run_features(&checkpoint, model, image, test, class, &out, data, json),
        Command::Evaluate {
            checkpoint,
            model,
            predictions,
            data,
            json,
        } => run_evaluate(&checkpoint, model, predictions, data, json),
        Command::Embed(args) => run_embed(args),
        Command::Transfer(args) => run_transfer(args),
        Command::Bench {
            what: BenchCommand::Load { data, repeat, json },
        } => bench_load(data, repeat, json),
        Command::Bench {
            what:
                BenchCommand::Train {
                    model,
                    steps,
                    batch_size,
                    layout,
                    data,
                    json,
                },
        } => bench_train(model, steps, batch_size, layout, data, json),
    }
}

fn data_path(data: Option<PathBuf>) -> PathBuf {
    data.unwrap_or_else(data::default_data_path)
}

fn print_json(value: &serde_json::Value) -> Result<()> {
    use std::io::Write;
    // writeln!, unlike println!, reports a closed pipe as an error instead of panicking.
    writeln!(
        std::io::stdout().lock(),
        "{}",
        serde_json::to_string_pretty(value)?
    )?;
    Ok(())
}

fn prepare_data(source: &Path, out: &Path, expect: Option<&str>, json: bool) -> Result<()> {
    let start = Instant::now();
    let report = data::prepare_data(source, out, expect)
        .with_context(|| format!("building {} from {}", out.display(), source.display()))?;
    let seconds = start.elapsed().as_secs_f64();
    if json {
        let mut v = serde_json::to_value(&report)?;
        v["seconds"] = json!(seconds);
        print_json(&v)
    } else {
        println!(
            "wrote {} ({} bytes, {} train + {} test rows) in {seconds:.1} s\nsha256 {}",
            report.out.display(),
            report.bytes,
            report.train_rows,
            report.test_rows,
            report.sha256
        );
        Ok(())
    }
}

fn split_json(set: &ImageSet) -> serde_json::Value {
    let counts = set.class_counts();
    let (mean, std) = set.pixel_mean_std();
    let per_class: serde_json::Map<String, serde_json::Value> = CLASS_NAMES
        .iter()
        .zip(counts)
        .map(|(n, c)| (n.to_string(), json!(c)))
        .collect();
    json!({ "rows": set.len(), "class_counts": per_class, "pixel_mean": mean, "pixel_std": std })
}

fn data_info(data: Option<PathBuf>, no_cache: bool, json_out: bool) -> Result<()> {
    let path = data_path(data);
    let policy = if no_cache {
        CachePolicy::Off
    } else {
        CachePolicy::Default
    };
    let d =
        data::load_with(&path, &policy).with_context(|| format!("loading {}", path.display()))?;
    let split = d.split()?;
    let v = json!({
        "source": d.info.source,
        "load_seconds": d.info.load_seconds,
        "cached": d.info.cached,
        "content_hash": d.info.content_hash,
        "cache_warning": d.info.cache_warning,
        "train": split_json(&d.train),
        "test": split_json(&d.test),
        "split": { "seed": 13, "validation_fraction": 0.2,
                   "train": split.train.len(), "validation": split.validation.len() },
    });
    if json_out {
        return print_json(&v);
    }
    println!("{}  (hash {})", path.display(), d.info.content_hash);
    println!(
        "loaded in {:.3} s{}",
        d.info.load_seconds,
        if d.info.cached {
            " from the cache"
        } else {
            " (parsed; cache written)"
        }
    );
    if let Some(w) = &d.info.cache_warning {
        println!("warning: cache not written: {w}");
    }
    println!("{:<12} {:>8} {:>8}", "class", "train", "test");
    let (tr, te) = (d.train.class_counts(), d.test.class_counts());
    for (i, name) in CLASS_NAMES.iter().enumerate() {
        println!("{:<12} {:>8} {:>8}", name, tr[i], te[i]);
    }
    println!("{:<12} {:>8} {:>8}", "total", d.train.len(), d.test.len());
    let (m1, s1) = d.train.pixel_mean_std();
    let (m2, s2) = d.test.pixel_mean_std();
    println!("pixel mean/std (0..1): train {m1:.4}/{s1:.4}, test {m2:.4}/{s2:.4}");
    println!(
        "80/20 split (seed 13): {} train / {} validation",
        split.train.len(),
        split.validation.len()
    );
    Ok(())
}

fn run_tsne(a: TsneArgs) -> Result<()> {
    let path = data_path(a.data);
    let d = data::load(&path).with_context(|| format!("loading {}", path.display()))?;
    let pool = match a.pool {
        Pool::Train => d.train,
        Pool::All => {
            let mut all = d.train;
            all.images.extend_from_slice(&d.test.images);
            all.labels.extend_from_slice(&d.test.labels);
            all
        }
    };
    if a.n == 0 || a.n > pool.len() {
        bail!(
            "--n {} is outside 1..={} (images available)",
            a.n,
            pool.len()
        );
    }
    let set = pool.first(a.n);
    let config = TsneConfig {
        perplexity: a.perplexity,
        epochs: a.epochs,
        learning_rate: a.learning_rate,
        method: match a.method {
            Method::Auto => TsneMethod::Auto,
            Method::Fitsne => TsneMethod::FitSne,
            Method::BarnesHut => TsneMethod::BarnesHut { theta: a.theta },
        },
        init: match a.init {
            Init::Pca => TsneInit::Pca,
            Init::Spectral => TsneInit::Spectral,
            Init::Random => TsneInit::Random,
        },
        seed: a.seed,
        ..TsneConfig::default()
    };
    let emb = tsne::tsne_images(&set, &config)?;
    if let Some(p) = &a.png {
        ClassScatter::new(
            format!(
                "t-SNE of {} images (10-NN accuracy {:.3})",
                a.n, emb.knn10_accuracy
            ),
            emb.coords.clone(),
            emb.labels.clone(),
        )
        .draw()?
        .save(p)
        .with_context(|| format!("writing {}", p.display()))?;
    }
    if let Some(p) = &a.embedding_out {
        let mut csv = String::from("index,label,x,y\n");
        for (i, (c, l)) in emb.coords.iter().zip(&emb.labels).enumerate() {
            csv.push_str(&format!("{i},{l},{},{}\n", c[0], c[1]));
        }
        write_atomic(p, csv.as_bytes()).with_context(|| format!("writing {}", p.display()))?;
    }
    if a.json {
        print_json(&json!({
            "n": a.n,
            "seconds": emb.seconds,
            "pca_seconds": emb.pca_seconds,
            "neighbors_seconds": emb.neighbors_seconds,
            "fit_seconds": emb.fit_seconds,
            "knn10_accuracy": emb.knn10_accuracy,
            "config": emb.config,
            "threads": tch::get_num_threads(),
        }))
    } else {
        println!(
            "t-SNE of {} images: {:.2} s, 10-NN accuracy {:.4}",
            a.n, emb.seconds, emb.knn10_accuracy
        );
        Ok(())
    }
}

fn run_summary(kind: ModelKind, json_out: bool) -> Result<()> {
    let summary = TrainedNetwork::new(kind, tch::Device::Cpu)?.summary()?;
    if json_out {
        print_json(&serde_json::to_value(&summary)?)
    } else {
        println!("{summary}");
        Ok(())
    }
}

fn run_train(a: TrainArgs) -> Result<()> {
    let profile = profile_arg(&a.profile)?;
    let path = data_path(a.data);
    let d = data::load(&path).with_context(|| format!("loading {}", path.display()))?;
    let options = RunOptions {
        recipe: a.recipe.as_deref().map(str::parse).transpose()?,
        epochs: a.epochs,
        batch_size: a.batch_size,
        augment: !a.no_augment,
        seed: a.seed,
        out: a.out,
        resume: a.resume,
        verbose: !a.json,
        device: None,
    };
    let mut run = TrainingRun::prepare(a.model, &profile, &d, options)?;
    if !a.json {
        if a.resume && run.resumed_after.is_none() {
            println!(
                "no checkpoint in {}: starting afresh",
                run.checkpoints.path().display()
            );
        }
        println!("{}", run.describe());
        println!("{}", run.trainer.config);
    }
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

fn weights_arg(backbone: Backbone, weights: &Option<String>) -> Result<Weights> {
    Ok(match weights {
        Some(w) => Weights::parse(w),
        None => Weights::imagenet(backbone)?,
    })
}

fn run_embed(a: EmbedArgs) -> Result<()> {
    let profile = profile_arg(&a.profile)?;
    let kind = ModelKind::for_backbone(a.backbone);
    let size = a
        .size
        .or(profile.sizes(kind).input_size)
        .unwrap_or(a.backbone.min_input());
    let weights = weights_arg(a.backbone, &a.weights)?;
    let extractor = FeatureExtractor::new(a.backbone, &weights, size, train::best_device())
        .with_context(|| format!("preparing the {} trunk", a.backbone.title()))?;
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

fn run_transfer(a: TransferArgs) -> Result<()> {
    let profile = profile_arg(&a.profile)?;
    let kind = ModelKind::for_backbone(a.backbone);
    let path = data_path(a.data);
    let d = data::load(&path).with_context(|| format!("loading {}", path.display()))?;
    let options = TransferOptions {
        weights: Some(weights_arg(a.backbone, &a.weights)?),
        image_size: a.size,
        recipe: a.recipe.parse()?,
        epochs: a.epochs,
        out: a.out,
        resume: a.resume,
        verbose: !a.json,
        device: None,
        seed: a.seed,
    };
    let mut run = TransferRun::prepare(kind, &profile, &d, options)?;
    if !a.json {
        println!("{}", run.describe());
    }
    let result = run.fit()?;
    if a.json {
        let mut v = serde_json::to_value(&result)?;
        v["checkpoint"] = json!(run.checkpoints.best());
        print_json(&v)
    } else {
        println!(
            "{}: frozen trunk + head {:.4}, fine-tuned {:.4} test accuracy on {} images; best weights in {}",
            a.backbone.title(),
            result.frozen_test_accuracy,
            result.test_accuracy,
            result.test_images,
            run.checkpoints.best().display()
        );
        Ok(())
    }
}

/// The trained network in `checkpoint`, of kind `model` or the one named beside it.
fn open_checkpoint(
    checkpoint: &Path,
    model: Option<ModelKind>,
    device: tch::Device,
) -> Result<(ModelKind, TrainedNetwork)> {
    let kind = match model {
        Some(k) => k,
        None => {
            NetworkFile::find(checkpoint)
                .with_context(|| format!("pass --model ({})", ModelKind::names()))?
                .model
        }
    };
    let net = TrainedNetwork::load(kind, checkpoint, device)
        .with_context(|| format!("loading {} as a {kind} checkpoint", checkpoint.display()))?;
    Ok((kind, net))
}

fn run_evaluate(
    checkpoint: &Path,
    model: Option<ModelKind>,
    predictions: Option<PathBuf>,
    data: Option<PathBuf>,
    json_out: bool,
) -> Result<()> {
    let (kind, net) = open_checkpoint(checkpoint, model, train::best_device())?;
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
fn run_features(
    checkpoint: &Path,
    model: Option<ModelKind>,
    image: usize,
    from_test: bool,
    class: Option<usize>,
    out: &Path,
    data: Option<PathBuf>,
    json_out: bool,
) -> Result<()> {
    use fmnist_kit::features;
    let device = train::best_device();
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
    for (i, (name, act)) in features::layer_activations(net.model(), set, image, device)?
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

fn bench_load(data: Option<PathBuf>, repeat: usize, json_out: bool) -> Result<()> {
    let path = data_path(data);
    let repeat = repeat.max(1);
    let cache_dir = std::env::temp_dir().join(format!("fmnist-bench-cache-{}", std::process::id()));
    let best = |f: &mut dyn FnMut() -> Result<f64>| -> Result<f64> {
        let mut best = f64::MAX;
        for _ in 0..repeat {
            best = best.min(f()?);
        }
        Ok(best)
    };
    let parse_only =
        best(&mut || Ok(data::load_with(&path, &CachePolicy::Off)?.info.load_seconds))?;
    let first = best(&mut || {
        let _ = std::fs::remove_dir_all(&cache_dir);
        let d = data::load_with(&path, &CachePolicy::Dir(cache_dir.clone()))?;
        if d.info.cached {
            bail!("a fresh cache folder was used, yet the load says it was cached");
        }
        Ok(d.info.load_seconds)
    })?;
    let cached = best(&mut || {
        let d = data::load_with(&path, &CachePolicy::Dir(cache_dir.clone()))?;
        if !d.info.cached {
            bail!("the second load did not use the cache");
        }
        Ok(d.info.load_seconds)
    })?;
    let _ = std::fs::remove_dir_all(&cache_dir);
    if json_out {
        print_json(&json!({
            "data": path, "parse_seconds": parse_only, "first_load_seconds": first,
            "cached_load_seconds": cached, "repeat": repeat,
        }))
    } else {
        println!("load {} (best of {repeat})", path.display());
        println!("  parse, no cache          {parse_only:.3} s");
        println!(
            "  first load (writes cache) {first:.3} s   target <= 0.7 s: {}",
            verdict(first <= 0.7)
        );
        println!(
            "  cached load              {cached:.3} s   target <= 0.05 s: {}",
            verdict(cached <= 0.05)
        );
        Ok(())
    }
}

fn bench_train(
    kind: ModelKind,
    steps: usize,
    batch_size: Option<usize>,
    layout: LayoutArg,
    data: Option<PathBuf>,
    json_out: bool,
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
    let device = train::best_device();
    let set = d
        .train
        .first((config.batch_size * steps.max(8)).min(d.train.len()));
    // Rounds alternate between the two settings and the best of each is kept, so that neither
    // pays for warming up the machine and the machine's other work only ever slows a round down.
    let mut plain = Trainer::new(kind, config.clone(), device)?;
    let mut augmented = Trainer::new(kind, config.clone(), device)?;
    let (mut noaug, mut aug) = (0.0f64, 0.0f64);
    for _ in 0..3 {
        noaug = noaug.max(plain.measure_throughput(&set, steps, false)?);
        aug = aug.max(augmented.measure_throughput(&set, steps, true)?);
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

fn verdict(ok: bool) -> &'static str {
    if ok {
        "met"
    } else {
        "MISSED"
    }
}
