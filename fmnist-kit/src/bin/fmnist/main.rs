//! `fmnist`: the kit's command-line tool. `fmnist --help` lists the commands.

use std::path::PathBuf;

use anyhow::Result;
use clap::{Parser, Subcommand};

use fmnist_kit::data;
use fmnist_kit::models::{Backbone, ModelKind};
use fmnist_kit::train::{self, Precision};

mod ablate;
mod common;
mod dataset;
mod doctor;
mod grid;
mod time_to_accuracy;
mod training;
mod transfer;

use ablate::{run_ablate, AblateArgs};
use common::Globals;
use dataset::{bench_load, data_info, prepare_data, run_tsne, TsneArgs};
use grid::{run_grid, GridArgs};
use time_to_accuracy::{run_time_to_accuracy, TimeToAccuracyArgs};
use training::{
    bench_train, run_evaluate, run_features, run_lr_find, run_summary, run_train, LayoutArg,
    LrFindArgs, TrainArgs,
};
use transfer::{bench_embed, run_embed, run_transfer, EmbedArgs, TransferArgs};

#[derive(Parser)]
#[command(
    name = "fmnist",
    version,
    about = "Fashion-MNIST workbench: data, training, transfer learning, grid search, evaluation, feature maps, t-SNE (see README.md)"
)]
struct Cli {
    /// Where to compute: auto (the GPU when there is one), cpu, cuda or cuda:N (an error
    /// without that GPU).
    #[arg(long, global = true, default_value = "auto", value_parser = parse_device)]
    device: DeviceArg,
    /// Precision of training steps and of forward passes: fp32, bf16 (autocast; the weights
    /// stay fp32) or auto (bf16 where this machine runs it faster, see `fmnist doctor`)
    /// [default: training takes its profile's (quick: auto; smoke, full: fp32), evaluation,
    /// predictions, features and benchmarks fp32]. Training scores in fp32 whatever it trains in.
    #[arg(long, global = true, value_enum)]
    precision: Option<Precision>,
    /// Write no TensorBoard logs (by default every training writes them: `fmnist train` and
    /// `transfer` beside their checkpoints, `grid` in `<dir>/tensorboard`).
    #[arg(long, global = true)]
    no_tensorboard: bool,
    #[command(subcommand)]
    command: Command,
}

/// `--device`: `auto`, `cpu`, `cuda` (GPU 0) or `cuda:N`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum DeviceArg {
    Auto,
    Cpu,
    Cuda(usize),
}

fn parse_device(s: &str) -> std::result::Result<DeviceArg, String> {
    match s.trim().to_ascii_lowercase().as_str() {
        "auto" => Ok(DeviceArg::Auto),
        "cpu" => Ok(DeviceArg::Cpu),
        "cuda" => Ok(DeviceArg::Cuda(0)),
        other => other
            .strip_prefix("cuda:")
            .and_then(|n| n.parse().ok())
            .map(DeviceArg::Cuda)
            .ok_or_else(|| format!("{other:?} is not one of auto, cpu, cuda, cuda:N")),
    }
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
        /// The network.
        #[arg(long, value_enum)]
        model: ModelKind,
        #[arg(long)]
        json: bool,
    },
    /// Train a network on the 80/20 split, keep the best checkpoint, report test accuracy.
    Train(TrainArgs),
    /// The learning-rate finder: a sweep of rising rates over a few hundred steps, the loss
    /// against the rate, and the suggested peak rate (where the loss falls fastest).
    LrFind(LrFindArgs),
    /// Train a network under variants of its profile's recipe on several seeds, and print each
    /// variant's validation and test accuracy (plain and with test-time flip), mean ± std.
    Ablate(AblateArgs),
    /// Write one PNG per layer (feature maps, 16 channels per row) and a Grad-CAM overlay for one image.
    Features {
        #[arg(long)]
        checkpoint: PathBuf,
        /// The network [default: the one network.json beside the weights names (else result.json
        /// or state.json)]
        #[arg(long, value_enum)]
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
        /// The network [default: the one network.json beside the weights names (else result.json
        /// or state.json)]
        #[arg(long, value_enum)]
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

#[derive(Subcommand)]
enum BenchCommand {
    /// Training throughput (images/s) with and without the model's original augmentation.
    Train {
        /// The network.
        #[arg(long, value_enum)]
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
        #[arg(long, value_enum)]
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
    /// Time to accuracy: trains with the profile's recipe and scores the test set after every
    /// epoch with the clock stopped (JSON; `make bench-tta` puts the PyTorch peer beside it).
    Tta(TimeToAccuracyArgs),
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
    let device = match cli.device {
        DeviceArg::Auto => train::best_device(),
        DeviceArg::Cpu => tch::Device::Cpu,
        DeviceArg::Cuda(n) => {
            let _ = train::best_device(); // loads libtorch's CUDA library when there is one
            let count = tch::Cuda::device_count().max(0) as usize;
            if n >= count {
                anyhow::bail!(
                    "--device cuda:{n}: libtorch sees {count} CUDA device(s) here (run `fmnist doctor` to see what it finds)"
                );
            }
            tch::Device::Cuda(n)
        }
    };
    let g = Globals {
        device,
        precision: cli.precision,
        tensorboard: !cli.no_tensorboard,
    };
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
        Command::Train(args) => run_train(args, g),
        Command::LrFind(args) => run_lr_find(args, g),
        Command::Ablate(args) => run_ablate(args, g),
        Command::Features {
            checkpoint,
            model,
            image,
            test,
            class,
            out,
            data,
            json,
        } => run_features(&checkpoint, model, image, test, class, &out, data, json, g),
        Command::Evaluate {
            checkpoint,
            model,
            predictions,
            data,
            json,
        } => run_evaluate(&checkpoint, model, predictions, data, json, g),
        Command::Grid(args) => run_grid(args, g),
        Command::Embed(args) => run_embed(args, g),
        Command::Transfer(args) => run_transfer(args, g),
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
        } => bench_embed(backbone, size, images, batch, data, json, g),
        Command::Bench {
            what: BenchCommand::Load { data, repeat, json },
        } => bench_load(data, repeat, json),
        Command::Bench {
            what: BenchCommand::Tta(args),
        } => run_time_to_accuracy(args, g),
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
        } => bench_train(model, steps, batch_size, layout, data, json, g),
    }
}
