//! The training loop: an owned [`Trainer`] (a [`TrainedNetwork`], its optimiser, the loop's
//! counters, its history and its pluggable pieces) that fits on an augmented training split
//! and validates every epoch. What happens around each step and epoch (the learning-rate
//! schedule, keeping the best epoch, early stopping, checkpoints, progress lines, metrics
//! sinks) is done by the pieces of [`super::callback`], chosen from the configuration by
//! [`super::callbacks::for_config`].
//!
//! ```text
//! for epoch in epochs_done+1 ..= until:
//!     seed the epoch; shuffle; augment
//!     for batch: [stop requested? roll back to the epoch's start, return]
//!                forward, loss, backward; pieces.before_step; optimiser step; pieces.after_step
//!     validate; sinks.record_epoch (the history first)
//!     pieces.after_epoch: best epoch, progress, schedule, early stopping, checkpoint
//! when the run has ended: pieces.after_run (restore the best epoch)
//! ```
//!
//! Randomness is derived from `(seed, epoch)`: the shuffle order, the augmentation and dropout
//! of an epoch are the same whether the run was interrupted and resumed or not, and two runs
//! with the same seed on the CPU give the same losses.

use std::time::Instant;

use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use tch::{nn, Device, Kind, Tensor};

use super::callback::{
    Callback, EndContext, EpochContext, FitStart, MetricsSink, StepContext, StopRequest,
};
use super::callbacks::for_config;
use super::checkpoint::{EpochRecord, History, LoopState};
use super::config::TrainConfig;
use super::network::{Evaluation, TrainedNetwork};
use super::optim::{to_channels_last, Optimizer, StepSettings};
use super::precision::{Autocast, Precision};
use super::tensorboard_sink::TensorBoardSink;
use crate::augment::Augmenter;
use crate::data::ImageSet;
use crate::error::{Error, Result};
use crate::models::{Classifier, NetworkConfig};
use crate::util::progress_line;

/// A network with its optimiser state and history: everything a notebook keeps while training.
pub struct Trainer {
    /// The settings; the loop's pieces were chosen from them when the trainer was built.
    pub config: TrainConfig,
    pub history: History,
    pub device: Device,
    net: TrainedNetwork,
    optimizer: Optimizer,
    pub(crate) state: LoopState,
    pieces: Vec<Box<dyn Callback>>,
    sinks: Vec<Box<dyn MetricsSink>>,
    stop: StopRequest,
    /// A stop request was handed out: keep what rolling back an epoch needs.
    stop_armed: bool,
    /// The 4-D variables are in channels-last order now (inside `fit`, see `channels_last`).
    channels_last_active: bool,
    /// Epochs done when the last fit stopped at a [`StopRequest`].
    interrupted_after: Option<usize>,
    /// Training steps run under bf16 autocast (`config.precision` resolved on the device).
    /// Scores (validation, test, predictions) are computed in fp32 whatever this is.
    bf16_steps: bool,
}

impl std::fmt::Debug for Trainer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let pieces: Vec<&str> = self.pieces.iter().map(|p| p.name()).collect();
        write!(
            f,
            "Trainer({}, {} epochs done, {:?}, pieces: {})",
            self.state.model,
            self.state.epochs_done,
            self.device,
            pieces.join(", ")
        )
    }
}

fn seed_for(seed: u64, epoch: usize, stream: u64) -> u64 {
    seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ ((epoch as u64) << 20) ^ stream
}

impl Trainer {
    /// A fresh `network` on `device`, initialised from `config.seed`, with the pieces `config`
    /// asks for. `ModelKind::Cnn4.into()` is the CNN with the original's settings.
    pub fn new(
        network: impl Into<NetworkConfig>,
        config: TrainConfig,
        device: Device,
    ) -> Result<Trainer> {
        Trainer::new_with(network.into(), config, device, |_| Ok(()))
    }

    /// The one way a trainer is built: checks `config`, seeds torch from `config.seed`, builds
    /// `network` in a fresh variable store on `device`, lets `prepare` fill in or freeze
    /// variables (a transfer network copies its trunk and head and freezes the first part of the
    /// trunk), and sets up the optimiser over the variables that still train.
    pub fn new_with(
        network: NetworkConfig,
        config: TrainConfig,
        device: Device,
        prepare: impl FnOnce(&nn::VarStore) -> Result<()>,
    ) -> Result<Trainer> {
        config.validate()?;
        tch::manual_seed(config.seed as i64);
        let vs = nn::VarStore::new(device);
        let model = network.build(&vs.root())?;
        prepare(&vs)?;
        let optimizer = Optimizer::new(&vs, model.as_ref())?;
        let mut net = TrainedNetwork::from_parts(network, vs, model);
        // Every score in fp32, so that a network scores the same however it was trained and
        // wherever it is evaluated (`fmnist evaluate`, notebooks, `result.json`).
        net.set_precision(Precision::Fp32);
        let bf16_steps = config.precision.resolve_for(net.kind, device).0;
        net.batch_size = config.eval_batch_size;
        net.channels_last = config.channels_last;
        net.test_time_flip = config.test_time_flip;
        let kind = net.kind.to_string();
        let sinks = config
            .tensorboard_dir
            .iter()
            .map(|d| Box::new(TensorBoardSink::new(d)) as Box<dyn MetricsSink>)
            .collect();
        let state = LoopState {
            model: kind.clone(),
            learning_rate: config.learning_rate,
            ..Default::default()
        };
        Ok(Trainer {
            history: History {
                model: kind,
                ..Default::default()
            },
            device: net.device,
            pieces: for_config(&config),
            config,
            net,
            optimizer,
            state,
            sinks,
            stop: StopRequest::default(),
            stop_armed: false,
            channels_last_active: false,
            interrupted_after: None,
            bf16_steps,
        })
    }

    /// Adds a piece after the configured ones (called at every step and epoch from now on).
    pub fn add_callback(&mut self, piece: Box<dyn Callback>) {
        self.pieces.push(piece);
    }

    /// Adds a sink for the figures of every epoch (after the history, and the TensorBoard log
    /// when `config.tensorboard_dir` asks for one).
    pub fn add_sink(&mut self, sink: Box<dyn MetricsSink>) {
        self.sinks.push(sink);
    }

    /// A handle that asks a running `fit` to stop before its next batch. The loop then rolls
    /// back to the end of the last finished epoch and returns `Ok`; fitting again continues from
    /// there as an uninterrupted run would. (From now on every epoch keeps a copy of the
    /// weights and optimiser moments it started from.)
    pub fn stop_request(&mut self) -> StopRequest {
        self.stop_armed = true;
        self.stop.clone()
    }

    /// Epochs done when the last `fit` stopped at a stop request; `None` when it did not.
    pub fn interrupted_after(&self) -> Option<usize> {
        self.interrupted_after
    }

    /// The trained network (predict, evaluate, embeddings, activations).
    pub fn network(&self) -> &TrainedNetwork {
        &self.net
    }

    /// Hands the trained network out, dropping the optimiser state.
    pub fn into_network(self) -> TrainedNetwork {
        self.net
    }

    /// The network's layers.
    pub fn model(&self) -> &dyn Classifier {
        self.net.model()
    }

    /// True when the training steps run under bf16 autocast (`config.precision` resolved for
    /// this network on this device); scores are computed in fp32 either way.
    pub fn trains_in_bf16(&self) -> bool {
        self.bf16_steps
    }

    /// The variables (to save, load or inspect).
    pub fn var_store(&self) -> &nn::VarStore {
        self.net.var_store()
    }

    /// The current learning rate.
    pub fn learning_rate(&self) -> f64 {
        self.state.learning_rate
    }

    /// Sets the rate of the next steps (a schedule piece may still set it per step).
    pub fn set_learning_rate(&mut self, rate: f64) {
        self.state.learning_rate = rate;
    }

    /// Completed epochs.
    pub fn epochs_done(&self) -> usize {
        self.state.epochs_done
    }

    /// Mean cross-entropy and accuracy on `set` (evaluation mode, no L2 term).
    pub fn evaluate(&self, set: &ImageSet) -> Result<Evaluation> {
        self.net.evaluate(set)
    }

    /// Forward and loss under autocast (bf16 when configured), NaN guard, backward.
    /// Returns the data loss (the L2 penalty's gradient is added by the optimiser) and the
    /// logits.
    fn forward_backward(
        &mut self,
        xb: &Tensor,
        yb: &Tensor,
        epoch: usize,
        batch: usize,
    ) -> Result<(Tensor, Tensor)> {
        let (logits, loss) = {
            let _autocast = Autocast::enter(self.device, self.bf16_steps);
            let logits = if self.channels_last_active {
                self.net.model().forward_t(&to_channels_last(xb), true)
            } else {
                self.net.model().forward_t(xb, true)
            };
            let loss = if self.config.label_smoothing > 0.0 {
                logits.to_kind(Kind::Float).cross_entropy_loss::<Tensor>(
                    yb,
                    None,
                    tch::Reduction::Mean,
                    -100,
                    self.config.label_smoothing,
                )
            } else {
                logits.cross_entropy_for_logits(yb)
            };
            (logits, loss)
        };
        let value = loss.double_value(&[]);
        if !value.is_finite() {
            self.state.stopped = true;
            return Err(Error::Diverged(format!(
                "the training loss became {value} at epoch {epoch}, batch {batch} (learning rate {:.2e}); \
                 lower the learning rate or check the data (the weights were not updated with it)",
                self.state.learning_rate
            )));
        }
        self.optimizer.zero_grad()?;
        loss.backward();
        Ok((loss, logits))
    }

    /// One optimisation step on a batch (`xb` `[B, …]` as the network takes it, `yb` `[B]`):
    /// forward, loss, backward, the pieces' `before_step`, the update, their `after_step`.
    /// Returns the batch's data loss and logits. `step_in_epoch` is 1-based, of `batches`.
    #[allow(clippy::too_many_arguments)]
    fn step_batch(
        &mut self,
        pieces: &mut [Box<dyn Callback>],
        xb: &Tensor,
        yb: &Tensor,
        epoch: usize,
        step_in_epoch: usize,
        batches: usize,
        progress: (usize, &Tensor, Instant),
    ) -> Result<(Tensor, Tensor)> {
        let (loss, logits) = self.forward_backward(xb, yb, epoch, step_in_epoch)?;
        self.state.optimizer_steps += 1;
        let mut ctx = StepContext {
            config: &self.config,
            state: &mut self.state,
            epoch,
            batch: step_in_epoch,
            batches,
            images_seen: progress.0,
            loss_sum: progress.1,
            epoch_start: progress.2,
        };
        for p in pieces.iter_mut() {
            p.before_step(&mut ctx)?;
        }
        let settings = StepSettings::new(
            &self.config,
            self.state.learning_rate,
            self.state.optimizer_steps,
        );
        self.optimizer.step(self.net.var_store(), settings)?;
        Ok((loss, logits))
    }

    /// One optimisation step on a batch outside `fit` (the throughput benchmark, or a loop
    /// written by hand): as inside the loop, with the schedule's rate for the next step.
    /// Returns the batch's data loss (a scalar tensor).
    pub fn train_batch(&mut self, xb: &Tensor, yb: &Tensor) -> Result<Tensor> {
        let mut pieces = std::mem::take(&mut self.pieces);
        let zero = Tensor::zeros([], (Kind::Double, self.device));
        let step = (self.state.optimizer_steps + 1) as usize;
        let done = self.step_batch(&mut pieces, xb, yb, 0, step, 1, (0, &zero, Instant::now()));
        self.pieces = pieces;
        done.map(|(loss, _)| loss)
    }

    /// Runs `work` with the variables in the training memory layout (channels-last when
    /// configured, on the CPU), and puts them back in the default layout afterwards, also
    /// when `work` fails.
    pub fn in_training_layout<T>(
        &mut self,
        work: impl FnOnce(&mut Trainer) -> Result<T>,
    ) -> Result<T> {
        let relayout = self.config.channels_last && self.device == Device::Cpu;
        if relayout {
            self.set_channels_last(true)?;
        }
        let result = work(self);
        if relayout {
            self.set_channels_last(false)?;
        }
        result
    }

    fn set_channels_last(&mut self, on: bool) -> Result<()> {
        self.channels_last_active = on;
        self.optimizer.set_channels_last(self.net.var_store(), on)
    }

    /// Trains on `train`, validating on `validation` after every epoch, until `config.epochs`
    /// epochs are done in total (a resumed trainer continues where it stopped) or early stopping.
    pub fn fit(&mut self, train: &ImageSet, validation: &ImageSet) -> Result<&History> {
        self.fit_for(train, validation, usize::MAX)
    }

    /// Like [`Trainer::fit`], but stops after at most `epochs` more epochs, so that a notebook
    /// can look at the curves and continue (the schedule still spans `config.epochs`). The
    /// best epoch's weights are restored only once the run has ended.
    pub fn fit_for(
        &mut self,
        train: &ImageSet,
        validation: &ImageSet,
        epochs: usize,
    ) -> Result<&History> {
        if train.is_empty() || validation.is_empty() {
            return Err(Error::param(
                "train",
                "the training and validation sets must not be empty",
            ));
        }
        self.fit_tensors_for(
            &train.images_tensor(),
            &train.labels_tensor(),
            &validation.images_tensor(),
            &validation.labels_tensor(),
            epochs,
        )
    }

    /// Trains on tensors: inputs `x` (images `[N, 1, 28, 28]`, or whatever the network takes,
    /// e.g. cached trunk features `[N, D]` for a head) and labels `y` (`[N]`, int64), validating
    /// on `x_val`, `y_val`. Augmentation applies to 1-channel image batches only; configuring it
    /// for other inputs is an error.
    pub fn fit_tensors(
        &mut self,
        x: &Tensor,
        y: &Tensor,
        x_val: &Tensor,
        y_val: &Tensor,
    ) -> Result<&History> {
        self.fit_tensors_for(x, y, x_val, y_val, usize::MAX)
    }

    fn fit_tensors_for(
        &mut self,
        x: &Tensor,
        y: &Tensor,
        x_val: &Tensor,
        y_val: &Tensor,
        epochs: usize,
    ) -> Result<&History> {
        check_inputs(x, y, x_val, y_val, &self.config)?;
        let until = self
            .state
            .epochs_done
            .saturating_add(epochs)
            .min(self.config.epochs);
        // A request belongs to a running fit: one left from before this call is dropped.
        self.interrupted_after = None;
        self.stop.clear();
        let start = FitStart {
            model: &self.state.model,
            config: &self.config,
            optimizer_steps: self.state.optimizer_steps,
            epochs_done: self.state.epochs_done,
        };
        for s in &mut self.sinks {
            s.start_fit(&start)?;
        }
        let mut pieces = std::mem::take(&mut self.pieces);
        let trained = self
            .in_training_layout(|this| this.train_epochs(&mut pieces, x, y, x_val, y_val, until));
        let ended = self.interrupted_after.is_none()
            && (self.state.stopped || self.state.epochs_done >= self.config.epochs);
        let finished = trained.and_then(|()| {
            if !ended {
                return Ok(());
            }
            if self.history.stop_reason.is_empty() {
                self.history.stop_reason = "completed".into();
            }
            let mut ctx = EndContext {
                config: &self.config,
                history: &mut self.history,
                network: &mut self.net,
            };
            pieces.iter_mut().try_for_each(|p| p.after_run(&mut ctx))
        });
        self.pieces = pieces;
        finished.map(|()| &self.history)
    }

    /// The epochs of [`Trainer::fit_tensors_for`], up to `until` epochs done in total.
    fn train_epochs(
        &mut self,
        pieces: &mut [Box<dyn Callback>],
        x: &Tensor,
        y: &Tensor,
        x_val: &Tensor,
        y_val: &Tensor,
        until: usize,
    ) -> Result<()> {
        let x_train = x.to_device(self.device);
        let y_train = y.to_device(self.device);
        let n = x.size()[0] as usize;
        let bs = self.config.batch_size.min(n);
        let batches = n.div_ceil(bs);
        while self.state.epochs_done < until && !self.state.stopped {
            let epoch = self.state.epochs_done + 1;
            let start = Instant::now();
            let rollback = self.stop_armed.then(|| self.epoch_start());
            tch::manual_seed(seed_for(self.config.seed, epoch, 1) as i64);
            let mut order: Vec<i64> = (0..n as i64).collect();
            order.shuffle(&mut ChaCha8Rng::seed_from_u64(seed_for(
                self.config.seed,
                epoch,
                2,
            )));
            let order = Tensor::from_slice(&order).to_device(self.device);
            let mut augmenter = Augmenter::new(
                self.config.augment.clone(),
                seed_for(self.config.seed, epoch, 3),
            )?;
            let augment = !self.config.augment.is_identity() && x.dim() == 4;
            let mut loss_sum = Tensor::zeros([], (Kind::Double, self.device));
            let mut correct = Tensor::zeros([], (Kind::Int64, self.device));
            let loss_every = self.sinks.iter().filter_map(|s| s.loss_every_steps()).min();
            let mut seen = 0;
            for b in 0..batches {
                if self.stop.is_requested() {
                    if let Some(r) = rollback {
                        self.roll_back(r)?;
                    }
                    self.stop.clear();
                    self.interrupted_after = Some(self.state.epochs_done);
                    progress_line(&format!(
                        "stopped in epoch {epoch}, batch {}/{batches}: back to the end of epoch {}; fitting again continues from there",
                        b + 1,
                        self.state.epochs_done
                    ));
                    return Ok(());
                }
                let lo = (b * bs) as i64;
                let len = bs.min(n - b * bs);
                let idx = order.narrow(0, lo, len as i64);
                let mut xb = x_train.index_select(0, &idx);
                if augment {
                    xb = augmenter.apply(&xb)?;
                }
                if b == 0 && x.dim() == 4 {
                    let step = self.state.optimizer_steps + 1;
                    for s in self.sinks.iter_mut().filter(|s| s.wants_input_sample()) {
                        s.record_input_sample(step, &xb)?;
                    }
                }
                let yb = y_train.index_select(0, &idx);
                let (data_loss, logits) = self.step_batch(
                    pieces,
                    &xb,
                    &yb,
                    epoch,
                    b + 1,
                    batches,
                    (seen, &loss_sum, start),
                )?;
                loss_sum += data_loss.detach().to_kind(Kind::Double) * len as f64;
                correct += logits.argmax(1, false).eq_tensor(&yb).sum(Kind::Int64);
                seen += len;
                let mut ctx = StepContext {
                    config: &self.config,
                    state: &mut self.state,
                    epoch,
                    batch: b + 1,
                    batches,
                    images_seen: seen,
                    loss_sum: &loss_sum,
                    epoch_start: start,
                };
                for p in pieces.iter_mut() {
                    p.after_step(&mut ctx)?;
                }
                if let Some(every) = loss_every {
                    let step = self.state.optimizer_steps;
                    if step as usize % every.max(1) == 0 {
                        let loss = data_loss.double_value(&[]);
                        for s in &mut self.sinks {
                            s.record_loss(step, loss)?;
                        }
                    }
                }
            }
            let train_seconds = start.elapsed().as_secs_f64();
            let (val_loss, val_accuracy) =
                if self.config.validate_every_epoch || epoch >= self.config.epochs {
                    let val = self.net.evaluate_tensors(x_val, y_val)?;
                    (val.loss, val.accuracy)
                } else {
                    (f64::NAN, f64::NAN)
                };
            let record = EpochRecord {
                epoch,
                train_loss: loss_sum.double_value(&[]) / n as f64,
                train_accuracy: correct.int64_value(&[]) as f64 / n as f64,
                val_loss,
                val_accuracy,
                learning_rate: self.state.learning_rate,
                seconds: start.elapsed().as_secs_f64(),
                images_per_s: n as f64 / train_seconds,
            };
            self.end_epoch(pieces, &record)?;
        }
        Ok(())
    }

    /// After an epoch's validation: counts it, gives its record to the sinks (the history
    /// first), then runs every piece's `after_epoch`.
    fn end_epoch(&mut self, pieces: &mut [Box<dyn Callback>], record: &EpochRecord) -> Result<()> {
        self.state.epochs_done = record.epoch;
        let step = self.state.optimizer_steps;
        self.history.record_epoch(&self.state.model, step, record)?;
        for s in &mut self.sinks {
            s.record_epoch(&self.state.model, step, record)?;
        }
        let mut ctx = EpochContext {
            config: &self.config,
            state: &mut self.state,
            history: &mut self.history,
            record,
            improved: false,
            network: &self.net,
            optimizer: &self.optimizer,
        };
        pieces.iter_mut().try_for_each(|p| p.after_epoch(&mut ctx))
    }
}

mod inputs;
mod report;
mod resume;

use inputs::check_inputs;

#[cfg(test)]
pub(crate) mod tests;
