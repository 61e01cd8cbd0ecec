//! Training, in small rooms:
//!
//! - [`config`]: what a run is told ([`TrainConfig`]); [`recipe`]: the [`Recipe`]s that fill it
//!   in for a network (the original project's settings, and tuned ones), also for both stages
//!   of a transfer run;
//! - `optim` and `fused`: Adam and SGD with the L2 gradient and weight decay folded in; on the
//!   CPU, Adam is one fused pass over each weight, its gradient and both moments;
//! - [`checkpoint`]: the files of a checkpoint folder (weights, optimiser state, counters,
//!   history, result), each written atomically;
//! - [`trainer`]: the loop ([`Trainer`]): shuffle, augment, step, validate, with its behaviour in
//!   pluggable pieces: [`callback`] (what a piece is and sees, metrics sinks, stop requests,
//!   which [`interrupt`] raises on SIGINT),
//!   [`callbacks`] (best epoch, progress, early stopping, checkpoints) and [`schedule`]
//!   (warm-up + cosine, reduce on plateau);
//! - [`tensorboard_sink`]: the TensorBoard log of a run, a metrics sink;
//! - [`lr_find`]: the learning-rate finder (a sweep of rising rates, the loss against the rate);
//! - [`throughput`]: the training benchmark;
//! - [`network`]: the trained network for inference ([`TrainedNetwork`]: load a checkpoint,
//!   predict, evaluate, embeddings, activations), which the trainer owns and hands out;
//! - [`device`]: the GPU when there is one; [`precision`]: bf16 autocast (on the GPU, and on
//!   CPUs where it pays).
//!
//! Nothing here knows about profiles or figures: [`crate::run`] puts a profile's run together.

pub mod callback;
pub mod callbacks;
pub mod checkpoint;
pub mod config;
pub mod device;
mod fused;
pub mod interrupt;
pub mod lr_find;
pub mod network;
mod optim;
pub mod precision;
pub mod recipe;
pub mod schedule;
pub mod tensorboard_sink;
pub mod throughput;
pub mod trainer;

pub use callback::{
    Callback, EndContext, EpochContext, FitStart, MetricsSink, StepContext, StopRequest,
};
pub use checkpoint::{CheckpointDir, EpochRecord, History, LoopState, NetworkFile, RunResult};
pub use config::{OptimizerKind, TrainConfig};
pub use device::best_device;
pub(crate) use interrupt::fit_interruptibly;
pub use interrupt::InterruptGuard;
pub use lr_find::{lr_find, LrFindConfig, LrFinder};
pub use network::{Evaluation, TrainedNetwork};
pub use precision::{torch_built_version, Autocast, Precision};
pub use recipe::Recipe;
pub use schedule::{LrSchedule, ReduceLrOnPlateau};
pub use tensorboard_sink::{hparams_of, TensorBoardSink};
pub use throughput::measure_throughput;
pub use trainer::Trainer;
