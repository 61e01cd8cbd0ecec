//! The training loop: an owned [`Trainer`] (a [`TrainedNetwork`], its optimiser, counters and
//! history) that fits on an augmented training split, validates every epoch, schedules the
//! learning rate, stops early, keeps the best weights, checkpoints atomically and resumes.
//!
//! Randomness is derived from `(seed, epoch)`: the shuffle order, the augmentation and dropout
//! of an epoch are the same whether the run was interrupted and resumed or not, and two runs
//! with the same seed on the CPU give the same losses.

use std::path::Path;
use std::time::Instant;

use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use tch::{nn, Device, Kind, Tensor};

use super::checkpoint::{
    CheckpointDir, EpochRecord, History, NetworkFile, RunResult, TrainerState,
};
use super::config::{LrSchedule, TrainConfig};
use super::network::{Evaluation, TrainedNetwork};
use super::optim::{to_channels_last, Optimizer, StepSettings};
use super::precision::Autocast;
use crate::augment::Augmenter;
use crate::data::ImageSet;
use crate::error::{Error, Result};
use crate::models::{Classifier, ModelKind};
use crate::util::{progress_line, read_json, write_json_atomic};

/// A network with its optimiser state and history: everything a notebook keeps while training.
pub struct Trainer {
    pub config: TrainConfig,
    pub history: History,
    pub device: Device,
    net: TrainedNetwork,
    optimizer: Optimizer,
    state: TrainerState,
    /// Best weights so far, kept in memory when no checkpoint folder is set.
    best_weights: Option<Vec<(String, Tensor)>>,
    /// Batches per epoch of the current `fit` (for per-batch schedules).
    steps_per_epoch: usize,
    /// The 4-D variables are in channels-last order now (inside `fit`, see `channels_last`).
    channels_last_active: bool,
}

impl std::fmt::Debug for Trainer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Trainer({}, {} epochs done, {:?})",
            self.state.model, self.state.epochs_done, self.device
        )
    }
}

fn seed_for(seed: u64, epoch: usize, stream: u64) -> u64 {
    seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ ((epoch as u64) << 20) ^ stream
}

impl Trainer {
    /// A fresh network of `kind` on `device`, initialised from `config.seed`.
    pub fn new(kind: ModelKind, config: TrainConfig, device: Device) -> Result<Trainer> {
        config.validate()?;
        tch::manual_seed(config.seed as i64);
        let vs = nn::VarStore::new(device);
        let model = kind.build(&vs.root())?;
        Self::with_model(vs, model, config)
    }

    /// A trainer around a network the caller built under `vs` (e.g. a `Cnn4` with another config).
    pub fn with_model(
        vs: nn::VarStore,
        model: Box<dyn Classifier>,
        config: TrainConfig,
    ) -> Result<Trainer> {
        config.validate()?;
        let optimizer = Optimizer::new(&vs, model.as_ref())?;
        let mut net = TrainedNetwork::from_parts(vs, model);
        net.set_precision(config.precision);
        net.batch_size = config.eval_batch_size;
        net.channels_last = config.channels_last;
        let kind = net.kind.to_string();
        let state = TrainerState {
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
            config,
            net,
            optimizer,
            state,
            best_weights: None,
            steps_per_epoch: 0,
            channels_last_active: false,
        })
    }

    /// The trained network (predict, evaluate, features, activations).
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

    /// The variables (to save, load or inspect).
    pub fn var_store(&self) -> &nn::VarStore {
        self.net.var_store()
    }

    /// The current learning rate.
    pub fn learning_rate(&self) -> f64 {
        self.state.learning_rate
    }

    /// Completed epochs.
    pub fn epochs_done(&self) -> usize {
        self.state.epochs_done
    }

    /// Mean cross-entropy and accuracy on `set` (evaluation mode, no L2 term).
    pub fn evaluate(&self, set: &ImageSet) -> Result<Evaluation> {
        self.net.evaluate(set)
    }

    /// The figures of this run evaluated on `test`, for `result.json`.
    pub fn result(
        &self,
        profile: &str,
        train_images: usize,
        train_seconds: f64,
        test: &Evaluation,
    ) -> RunResult {
        RunResult {
            model: self.history.model.clone(),
            profile: profile.to_string(),
            device: format!("{:?}", self.device),
            train_images,
            epochs_run: self.history.epochs.len(),
            stop_reason: self.history.stop_reason.clone(),
            train_seconds,
            best_val_accuracy: self.history.best().map(|b| b.val_accuracy),
            test_accuracy: test.accuracy,
            test_loss: test.loss,
            test_images: test.images,
            settings: self.config.to_string(),
        }
    }

    fn optimizer_step(&mut self) -> Result<()> {
        self.state.optimizer_steps += 1;
        if let LrSchedule::WarmupCosine { .. } = self.config.schedule {
            let per_epoch = self.steps_per_epoch.max(1);
            self.state.learning_rate = self.config.schedule.rate_at(
                self.config.learning_rate,
                self.state.optimizer_steps,
                per_epoch,
                (self.config.epochs * per_epoch) as i64,
            );
        }
        let settings = StepSettings::new(
            &self.config,
            self.state.learning_rate,
            self.state.optimizer_steps,
        );
        self.optimizer.step(self.net.var_store(), settings)
    }

    /// One optimisation step on a batch: forward, loss, NaN guard, backward, update.
    /// Returns the data loss (the L2 penalty's gradient is added by the optimiser) and the logits.
    fn train_step(
        &mut self,
        xb: &Tensor,
        yb: &Tensor,
        epoch: usize,
        batch: usize,
    ) -> Result<(Tensor, Tensor)> {
        // Forward and loss under autocast (bf16 when configured), backward outside it.
        let (logits, loss) = {
            let _autocast = Autocast::enter(self.device, self.net.bf16);
            let logits = if self.channels_last_active {
                self.net.model().forward_t(&to_channels_last(xb), true)
            } else {
                self.net.model().forward_t(xb, true)
            };
            let loss = logits.cross_entropy_for_logits(yb);
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
        self.optimizer_step()?;
        Ok((loss, logits))
    }

    /// Training throughput in images/s over `steps` batches of `set` (after 3 warm-up steps),
    /// with or without the configured augmentation. This trains the network.
    pub fn measure_throughput(
        &mut self,
        set: &ImageSet,
        steps: usize,
        augment: bool,
    ) -> Result<f64> {
        let bs = self.config.batch_size;
        if set.len() < bs || steps == 0 {
            return Err(Error::param(
                "set",
                format!("need at least one batch of {bs} images and one step"),
            ));
        }
        let x = set.images_tensor().to_device(self.device);
        let y = set.labels_tensor().to_device(self.device);
        let mut augmenter = Augmenter::new(self.config.augment.clone(), self.config.seed)?;
        let batches = set.len() / bs;
        let mut run = |this: &mut Trainer, count: usize| -> Result<f64> {
            let start = Instant::now();
            let mut last = Tensor::zeros([], (Kind::Float, this.device));
            for s in 0..count {
                let lo = ((s % batches) * bs) as i64;
                let mut xb = x.narrow(0, lo, bs as i64);
                if augment {
                    xb = augmenter.apply(&xb)?;
                }
                let (loss, _) = this.train_step(&xb, &y.narrow(0, lo, bs as i64), 0, s + 1)?;
                last = loss;
            }
            let _ = last.double_value(&[]); // wait for the device
            Ok(start.elapsed().as_secs_f64())
        };
        let seconds = self.in_training_layout(|this| {
            run(this, 3)?;
            run(this, steps)
        })?;
        Ok((steps * bs) as f64 / seconds)
    }

    /// Runs `work` with the variables in the training memory layout (channels-last when
    /// configured, on the CPU), and puts them back in the default layout afterwards, also
    /// when `work` fails.
    fn in_training_layout<T>(&mut self, work: impl FnOnce(&mut Trainer) -> Result<T>) -> Result<T> {
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
    /// e.g. cached features `[N, D]` for a head) and labels `y` (`[N]`, int64), validating on
    /// `x_val`, `y_val`. Augmentation applies to 1-channel image batches only; configuring it
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
        let (n, n_val) = (x.size().first().copied(), x_val.size().first().copied());
        if n.unwrap_or(0) == 0 || n_val.unwrap_or(0) == 0 {
            return Err(Error::param(
                "train",
                "the training and validation sets must not be empty",
            ));
        }
        if y.size() != [n.unwrap_or(0)] || y_val.size() != [n_val.unwrap_or(0)] {
            return Err(Error::param(
                "labels",
                format!(
                    "{:?} and {:?} labels for {:?} and {:?} inputs",
                    y.size(),
                    y_val.size(),
                    x.size(),
                    x_val.size()
                ),
            ));
        }
        let images = x.dim() == 4 && x.size()[1] == 1;
        if !images && !self.config.augment.is_identity() {
            return Err(Error::param(
                "augment",
                format!(
                    "augmentation works on image batches [N, 1, H, W], not on {:?}",
                    x.size()
                ),
            ));
        }
        let until = self
            .state
            .epochs_done
            .saturating_add(epochs)
            .min(self.config.epochs);
        self.in_training_layout(|this| this.train_epochs(x, y, x_val, y_val, until))?;
        let ended = self.state.stopped || self.state.epochs_done >= self.config.epochs;
        if !ended {
            return Ok(&self.history);
        }
        if self.history.stop_reason.is_empty() {
            self.history.stop_reason = "completed".into();
        }
        if self.config.restore_best {
            if let Some(dir) = self.config.checkpoint_dir.clone() {
                let best = CheckpointDir(dir).best();
                if best.is_file() {
                    self.net.load_weights(&best)?;
                }
            } else if let Some(w) = self.best_weights.take() {
                self.load_weights_from(&w)?;
            }
        }
        Ok(&self.history)
    }

    /// The epochs of [`Trainer::fit_tensors_for`], up to `until` epochs done in total.
    fn train_epochs(
        &mut self,
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
        self.steps_per_epoch = batches;
        while self.state.epochs_done < until && !self.state.stopped {
            let epoch = self.state.epochs_done + 1;
            let start = Instant::now();
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
            let mut last_print = Instant::now();
            for b in 0..batches {
                let lo = (b * bs) as i64;
                let len = bs.min(n - b * bs) as i64;
                let idx = order.narrow(0, lo, len);
                let mut xb = x_train.index_select(0, &idx);
                if augment {
                    xb = augmenter.apply(&xb)?;
                }
                let yb = y_train.index_select(0, &idx);
                let (data_loss, logits) = self.train_step(&xb, &yb, epoch, b + 1)?;
                loss_sum += data_loss.detach().to_kind(Kind::Double) * len as f64;
                correct += logits.argmax(1, false).eq_tensor(&yb).sum(Kind::Int64);
                if self.config.verbose
                    && self.config.progress_seconds > 0.0
                    && last_print.elapsed().as_secs_f64() >= self.config.progress_seconds
                    && b + 1 < batches
                {
                    let seen = (b + 1) * bs;
                    progress_line(&format!(
                        "  epoch {epoch}: batch {}/{batches}, loss {:.4}, {:.0} images/s",
                        b + 1,
                        loss_sum.double_value(&[]) / seen as f64,
                        seen as f64 / start.elapsed().as_secs_f64()
                    ));
                    last_print = Instant::now();
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
            if self.config.verbose {
                progress_line(&format!(
                    "epoch {epoch:>3}/{}  train loss {:.4} acc {:.4} | val loss {:.4} acc {:.4} | lr {:.1e} | {:.1} s, {:.0} images/s",
                    self.config.epochs,
                    record.train_loss,
                    record.train_accuracy,
                    record.val_loss,
                    record.val_accuracy,
                    record.learning_rate,
                    record.seconds,
                    record.images_per_s
                ));
            }
            self.history.epochs.push(record);
            self.end_of_epoch(val_loss)?;
        }
        Ok(())
    }

    /// Validation bookkeeping: best weights, early stopping, reduce-LR, checkpoints.
    fn end_of_epoch(&mut self, val_loss: f64) -> Result<()> {
        let epoch = self.state.epochs_done + 1;
        self.state.epochs_done = epoch;
        let improved = self.state.best_val_loss.is_none_or(|b| val_loss < b);
        if improved {
            self.state.best_val_loss = Some(val_loss);
            self.state.epochs_since_best = 0;
        } else {
            self.state.epochs_since_best += 1;
        }
        if let LrSchedule::ReduceOnPlateau(r) = self.config.schedule {
            if self.state.plateau_best.is_none_or(|b| val_loss < b) {
                self.state.plateau_best = Some(val_loss);
                self.state.epochs_since_lr_change = 0;
            } else {
                self.state.epochs_since_lr_change += 1;
                if self.state.epochs_since_lr_change >= r.patience
                    && self.state.learning_rate > r.min_lr
                {
                    let new_lr = (self.state.learning_rate * r.factor).max(r.min_lr);
                    if self.config.verbose {
                        progress_line(&format!("  reducing the learning rate to {new_lr:.1e} (no better validation loss for {} epochs)", r.patience));
                    }
                    self.state.learning_rate = new_lr;
                    self.state.epochs_since_lr_change = 0;
                }
            }
        }
        if let Some(p) = self.config.early_stopping_patience {
            if self.state.epochs_since_best >= p {
                self.state.stopped = true;
                self.history.stop_reason = format!("early stopping after epoch {epoch} ({p} epochs without a better validation loss)");
                if self.config.verbose {
                    progress_line(&format!("  {}", self.history.stop_reason));
                }
            }
        }
        if let Some(dir) = self.config.checkpoint_dir.clone() {
            self.save_checkpoint(&dir, improved)?;
        } else if improved && self.config.restore_best {
            self.best_weights = Some(self.snapshot_weights());
        }
        Ok(())
    }

    fn snapshot_weights(&self) -> Vec<(String, Tensor)> {
        self.var_store()
            .variables()
            .into_iter()
            .map(|(n, t)| (n, t.detach().copy()))
            .collect()
    }

    fn load_weights_from(&mut self, weights: &[(String, Tensor)]) -> Result<()> {
        let vars = self.var_store().variables();
        tch::no_grad(|| -> Result<()> {
            for (n, w) in weights {
                if let Some(v) = vars.get(n) {
                    v.shallow_clone().f_copy_(w)?;
                }
            }
            Ok(())
        })
    }

    /// Writes `last.safetensors` (weights), `optimizer.safetensors`, `state.json`,
    /// `history.json`, and `best.safetensors` when `is_best`; every file atomically.
    pub fn save_checkpoint(&self, dir: &Path, is_best: bool) -> Result<()> {
        let files = CheckpointDir(dir.to_path_buf());
        self.net.save_weights(&files.last())?;
        if is_best {
            self.net.save_weights(&files.best())?;
        }
        self.optimizer.save(&files.optimizer())?;
        self.net.network_file().save(dir)?;
        self.history.save(&files.history())?;
        write_json_atomic(&files.state(), &self.state)
    }

    /// Loads weights saved by a checkpoint (`best.safetensors` or `last.safetensors`).
    pub fn load_weights(&mut self, path: &Path) -> Result<()> {
        self.net.load_weights(path)
    }

    /// Continues from the last checkpoint in `dir` (weights, optimiser moments and step count,
    /// learning rate, early-stopping counters and history). `config` may raise `epochs`. The
    /// network is built as the `network.json` there describes it.
    pub fn resume(
        kind: ModelKind,
        config: TrainConfig,
        device: Device,
        dir: &Path,
    ) -> Result<Trainer> {
        let files = CheckpointDir(dir.to_path_buf());
        let mut t = match NetworkFile::beside(&files.last())? {
            Some(n) if n.model == kind => {
                config.validate()?;
                tch::manual_seed(config.seed as i64);
                let vs = nn::VarStore::new(device);
                let model = kind.build_with(&vs.root(), &n.config)?;
                Trainer::with_model(vs, model, config)?
            }
            _ => Trainer::new(kind, config, device)?,
        };
        t.restore(dir)?;
        Ok(t)
    }

    /// Loads the last checkpoint of `dir` into this trainer (built for the same network, with
    /// the same trainable variables): weights, optimiser state, counters and history.
    pub fn restore(&mut self, dir: &Path) -> Result<()> {
        let files = CheckpointDir(dir.to_path_buf());
        let state: TrainerState = read_json(&files.state())?;
        if state.model != self.state.model {
            return Err(Error::data(
                files.state(),
                "model",
                format!(
                    "the checkpoint is of a {} network, not a {}",
                    state.model, self.state.model
                ),
            ));
        }
        self.net.load_weights(&files.last())?;
        self.optimizer.load(&files.optimizer())?;
        self.history = History::load(&files.history())?;
        self.state = state;
        // A larger epoch budget lets a run that stopped by reaching its epochs continue.
        if self.state.epochs_done < self.config.epochs && self.history.stop_reason == "completed" {
            self.history.stop_reason.clear();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
