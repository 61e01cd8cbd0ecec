//! The pluggable pieces of the training loop: what a piece is ([`Callback`]), what it sees at
//! each point of the loop ([`StepContext`], [`EpochContext`], [`EndContext`]), where the
//! figures go ([`MetricsSink`]; the history is the first), and how a caller asks a running
//! loop to stop between two batches ([`StopRequest`]).
//!
//! A piece keeps what a resumed run must continue from in [`LoopState`] (saved as
//! `state.json` with every checkpoint), so that a run resumed from its checkpoint continues
//! bit for bit.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use tch::Tensor;

use super::checkpoint::{EpochRecord, History, LoopState};
use super::config::TrainConfig;
use super::network::{Evaluation, TrainedNetwork};
use super::optim::Optimizer;
use crate::error::Result;

/// What a piece sees before and after one optimiser step.
pub struct StepContext<'a> {
    pub config: &'a TrainConfig,
    pub state: &'a mut LoopState,
    /// 1-based epoch and batch, and the batches of an epoch.
    pub epoch: usize,
    pub batch: usize,
    pub batches: usize,
    /// Images trained on so far in this epoch, and the sum of their losses (a scalar tensor:
    /// reading it waits for the device, so read it only when needed).
    pub images_seen: usize,
    pub loss_sum: &'a Tensor,
    pub epoch_start: Instant,
}

/// What a piece sees after an epoch has been validated; it may change the counters (the
/// learning rate, early stopping) and write files.
pub struct EpochContext<'a> {
    pub config: &'a TrainConfig,
    pub state: &'a mut LoopState,
    pub history: &'a mut History,
    /// The epoch just finished (also the last record of `history`).
    pub record: &'a EpochRecord,
    /// True when its validation loss is the best so far (set by the best-epoch piece, which
    /// runs first).
    pub improved: bool,
    pub network: &'a TrainedNetwork,
    pub(crate) optimizer: &'a Optimizer,
}

/// What a piece sees when the run has ended (all epochs done, or stopped early).
pub struct EndContext<'a> {
    pub config: &'a TrainConfig,
    pub history: &'a mut History,
    pub network: &'a mut TrainedNetwork,
}

/// One behaviour of the training loop. The loop calls every piece, in order, at each of these
/// points; a piece overrides the ones it needs.
pub trait Callback {
    /// A short name, for messages and `Debug`.
    fn name(&self) -> &'static str;
    /// Before each optimiser step, with `state.optimizer_steps` already counting it (a
    /// per-batch schedule sets `state.learning_rate` here).
    fn before_step(&mut self, _ctx: &mut StepContext<'_>) -> Result<()> {
        Ok(())
    }
    /// After each optimiser step.
    fn after_step(&mut self, _ctx: &mut StepContext<'_>) -> Result<()> {
        Ok(())
    }
    /// After each epoch's validation, with `state.epochs_done` counting it.
    fn after_epoch(&mut self, _ctx: &mut EpochContext<'_>) -> Result<()> {
        Ok(())
    }
    /// Once, when the run has ended.
    fn after_run(&mut self, _ctx: &mut EndContext<'_>) -> Result<()> {
        Ok(())
    }
}

/// What a sink is told when a fit starts: the network, the settings, and where the run stands
/// (both 0 for a fresh run; a resumed one, or a fit after an interrupted one, continues there).
pub struct FitStart<'a> {
    pub model: &'a str,
    pub config: &'a TrainConfig,
    /// Optimiser steps and epochs done before this fit.
    pub optimizer_steps: i64,
    pub epochs_done: usize,
}

/// Where a run's figures go: one record per epoch, and the training loss every
/// [`MetricsSink::loss_every_steps`] optimiser steps when it asks for it. The trainer's
/// [`History`] is the first sink; the TensorBoard log (`TrainConfig::tensorboard_dir`) the
/// next; a caller adds more with `Trainer::add_sink`. Steps are optimiser steps, 1-based over
/// the whole run.
pub trait MetricsSink {
    /// When a fit starts, before its first batch.
    fn start_fit(&mut self, _start: &FitStart<'_>) -> Result<()> {
        Ok(())
    }
    /// One finished epoch of the network `model`, whose last step was `step`.
    fn record_epoch(&mut self, model: &str, step: i64, record: &EpochRecord) -> Result<()>;
    /// Ask for the training loss every N steps (reading it waits for the device); `None`,
    /// the default, never.
    fn loss_every_steps(&self) -> Option<usize> {
        None
    }
    /// The training loss of the batch of optimiser step `step`.
    fn record_loss(&mut self, _step: i64, _loss: f64) -> Result<()> {
        Ok(())
    }
    /// Ask for a batch as the network receives it (after augmentation) at the fit's first
    /// step; the default, never.
    fn wants_input_sample(&self) -> bool {
        false
    }
    /// The images of step `step`'s batch, `[B, 1, H, W]`, after augmentation.
    fn record_input_sample(&mut self, _step: i64, _batch: &Tensor) -> Result<()> {
        Ok(())
    }
    /// The run's network scored on `split` (e.g. "test") after `step` steps, with its
    /// confusion matrix.
    fn record_evaluation(
        &mut self,
        _step: i64,
        _split: &str,
        _evaluation: &Evaluation,
    ) -> Result<()> {
        Ok(())
    }
}

impl MetricsSink for History {
    fn record_epoch(&mut self, _model: &str, _step: i64, record: &EpochRecord) -> Result<()> {
        self.epochs.push(record.clone());
        Ok(())
    }
}

/// A request to stop a running loop between two batches, shared with whoever may ask (a
/// signal handler, another thread). The loop then rolls back to the end of the last finished
/// epoch, so that fitting again continues exactly as an uninterrupted run would.
#[derive(Clone, Debug, Default)]
pub struct StopRequest(Arc<AtomicBool>);

impl StopRequest {
    /// Asks the loop to stop before its next batch.
    pub fn request(&self) {
        self.0.store(true, Ordering::SeqCst);
    }
    /// True once asked (until cleared).
    pub fn is_requested(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
    /// Forgets the request (the loop does this when it has stopped).
    pub fn clear(&self) {
        self.0.store(false, Ordering::SeqCst);
    }
    /// The flag itself, for the SIGINT handler of [`super::interrupt::InterruptGuard`].
    pub(crate) fn flag_ptr(&self) -> *mut AtomicBool {
        Arc::as_ptr(&self.0) as *mut AtomicBool
    }
}
