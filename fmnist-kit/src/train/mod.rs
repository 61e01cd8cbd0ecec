//! Training, in small rooms:
//!
//! - [`config`]: what a run is told ([`TrainConfig`]) and the two [`Recipe`]s that fill it in
//!   for a network (the original project's settings, and tuned ones);
//! - `optim` and `fused`: Adam and SGD with the L2 gradient and weight decay folded in; on the
//!   CPU, Adam is one fused pass over each weight, its gradient and both moments;
//! - [`checkpoint`]: the files of a checkpoint folder (weights, optimiser state, counters,
//!   history, result), each written atomically;
//! - [`trainer`]: the loop ([`Trainer`]): shuffle, augment, step, validate, schedule, stop
//!   early, keep the best weights, checkpoint, resume;
//! - [`network`]: the trained network for inference ([`TrainedNetwork`]: load a checkpoint,
//!   predict, evaluate, features, activations), which the trainer owns and hands out;
//! - [`device`]: the GPU when there is one; [`precision`]: bf16 autocast (on the GPU, and on
//!   CPUs where it pays).
//!
//! Nothing here knows about profiles or figures: [`crate::run`] puts a profile's run together.

pub mod checkpoint;
pub mod config;
pub mod device;
mod fused;
pub mod network;
mod optim;
pub mod precision;
pub mod trainer;

pub use checkpoint::{CheckpointDir, EpochRecord, History, NetworkFile, RunResult};
pub use config::{LrSchedule, OptimizerKind, Recipe, ReduceLrOnPlateau, TrainConfig};
pub use device::best_device;
pub use network::{Evaluation, TrainedNetwork};
pub use precision::{torch_built_version, Autocast, Precision};
pub use trainer::Trainer;
