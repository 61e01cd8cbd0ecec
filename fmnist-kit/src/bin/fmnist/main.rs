//! `fmnist`: the kit's command-line tool. `fmnist --help` lists the commands.

use std::path::PathBuf;
use std::sync::OnceLock;

use anyhow::Result;
use clap::{Parser, Subcommand};

use fmnist_kit::data;
use fmnist_kit::models::{Backbone, ModelKind};
use fmnist_kit::train::{self, Precision};
use fmnist_kit::{Profile, ProfileName};

mod dataset;
mod doctor;
mod grid;
mod training;
mod transfer;

use dataset::{bench_load, data_info, prepare_data, run_tsne, TsneArgs};
use grid::{run_grid, GridArgs};
use training::{
    bench_train, run_evaluate, run_features, run_summary, run_train, LayoutArg, TrainArgs,
};
use transfer::{bench_embed, parse_backbone, run_embed, run_transfer, EmbedArgs, TransferArgs};

#[derive(Parser)]
#[command(
    name = "fmnist",
    version,
    about = "Fashion-MNIST workbench: data, training, transfer learning, grid search, evaluation, feature maps, t-SNE (see README.md)"
)]
struct Cli {
    /// Where to compute: auto (the GPU when there is one), cpu, or cuda (an error without one).
    #[arg(long, global = true, default_value = "auto")]
    device: String,
    /// Precision of forward passes: fp32, bf16 (autocast), or auto (bf16 on CUDA and on CPUs
    /// with native bf16, fp32 elsewhere).
    #[arg(long, global = true, default_value = "fp32")]
    precision: String,
    #[command(subcommand)]
    command: Command,
}

static DEVICE: OnceLock<tch::Device> = OnceLock::new();
static PRECISION: OnceLock<Precision> = OnceLock::new();

/// The device chosen with `--device`.
pub(crate) fn device() -> tch::Device {
    DEVICE.get().copied().unwrap_or(tch::Device::Cpu)
}

/// The precision chosen with `--precision`.
pub(crate) fn precision() -> Precision {
    PRECISION.get().copied().unwrap_or_default()
}

#[derive(Subcommand)]
enum Command {
    /// What the kit sees: the libtorch it was built for and the one loaded, devices, threads,
    /// CPU features, evcxr build folders, data and caches.
    Doctor {
        #[arg(long)]
        json: bool,
    },
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
    /// The original's grid search (lr × optimizer × dropout × dense size, stratified k-fold CV,
    /// negative log loss), every fit recorded as it ends: rerun to resume, `--shard K/N` to share
    /// it between processes or machines, then the report and the refit of the best point.
    Grid(GridArgs),
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

fn profile_arg(p: &Option<String>) -> Result<Profile> {
    Ok(match p {
        Some(p) => Profile::named(p.parse::<ProfileName>()?),
        None => Profile::from_env()?,
    })
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
    /// Feature extraction by a backbone's trunk (evaluation mode, random weights: speed does not
    /// depend on them) in images/s, best of three passes over the first test images.
    Embed {
        #[arg(long, value_parser = parse_backbone)]
        backbone: Backbone,
        /// Side the images are resized to.
        #[arg(long)]
        size: usize,
        #[arg(long, default_value_t = 1024)]
        images: usize,
        #[arg(long, default_value_t = 64)]
        batch: usize,
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

fn main() {
    if let Err(e) = run(Cli::parse()) {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}

fn run(cli: Cli) -> Result<()> {
    if let Command::Doctor { json } = cli.command {
        return doctor::run_doctor(json);
    }
    doctor::check_torch()?;
    let device = match cli.device.as_str() {
        "auto" => train::best_device(),
        "cpu" => tch::Device::Cpu,
        "cuda" => {
            let _ = train::best_device(); // loads libtorch's CUDA library when there is one
            if !tch::Cuda::is_available() {
                anyhow::bail!(
                    "--device cuda: libtorch sees no CUDA device here (run `fmnist doctor` to see what it finds)"
                );
            }
            tch::Device::Cuda(0)
        }
        other => anyhow::bail!("--device {other:?} is not one of auto, cpu, cuda"),
    };
    let _ = DEVICE.set(device);
    let _ = PRECISION.set(cli.precision.parse()?);
    match cli.command {
        Command::Doctor { .. } => Ok(()),
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
        Command::Grid(args) => run_grid(args),
        Command::Embed(args) => run_embed(args),
        Command::Transfer(args) => run_transfer(args),
        Command::Bench {
            what:
                BenchCommand::Embed {
                    backbone,
                    size,
                    images,
                    batch,
                    data,
                    json,
                },
        } => bench_embed(backbone, size, images, batch, data, json),
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

fn verdict(ok: bool) -> &'static str {
    if ok {
        "met"
    } else {
        "MISSED"
    }
}
