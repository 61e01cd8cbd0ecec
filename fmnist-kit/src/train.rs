//! Training: an owned [`Trainer`] (network + variables + optimiser state + history) that fits on
//! an augmented training split, validates every epoch, reduces the learning rate on plateaus,
//! stops early, keeps the best weights, checkpoints atomically and resumes.
//!
//! Randomness is derived from `(seed, epoch)`: the shuffle order, the augmentation and dropout
//! of an epoch are the same whether the run was interrupted and resumed or not, and two runs
//! with the same seed on the CPU give the same losses.

use std::path::{Path, PathBuf};
use std::time::Instant;

use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use tch::nn;
use tch::{Device, Kind, Tensor};

use crate::augment::{AugmentConfig, Augmenter};
use crate::data::{write_atomic, FashionMnist, ImageSet};
use crate::error::{Error, Result};
use crate::models::{self, Classifier, ModelKind};

/// The optimiser and its settings.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub enum OptimizerKind {
    /// Adam (Keras's defaults: beta1 0.9, beta2 0.999, epsilon 1e-7).
    Adam { beta1: f64, beta2: f64, eps: f64 },
    /// SGD with momentum, optionally Nesterov's.
    Sgd { momentum: f64, nesterov: bool },
}

impl OptimizerKind {
    /// Adam with Keras's defaults.
    pub fn adam() -> OptimizerKind {
        OptimizerKind::Adam {
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-7,
        }
    }

    /// SGD with momentum 0.9 and Nesterov's correction.
    pub fn sgd_nesterov() -> OptimizerKind {
        OptimizerKind::Sgd {
            momentum: 0.9,
            nesterov: true,
        }
    }
}

/// Reduce the learning rate when the validation loss stops improving (Keras `ReduceLROnPlateau`).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct ReduceLrOnPlateau {
    pub factor: f64,
    /// Epochs without improvement before reducing.
    pub patience: usize,
    pub min_lr: f64,
}

/// Everything about a training run except the data.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct TrainConfig {
    pub epochs: usize,
    pub batch_size: usize,
    pub optimizer: OptimizerKind,
    pub learning_rate: f64,
    /// Decoupled weight decay (AdamW style), on top of the model's own L2 penalty.
    pub weight_decay: f64,
    /// Add the model's L2 penalty (the original's `kernel_regularizer`s) to the loss.
    pub model_l2: bool,
    /// Stop after this many epochs without a better validation loss.
    pub early_stopping_patience: Option<usize>,
    pub reduce_lr: Option<ReduceLrOnPlateau>,
    /// Load the best epoch's weights when training ends.
    pub restore_best: bool,
    pub augment: AugmentConfig,
    pub seed: u64,
    /// Print a progress line at most this often within an epoch (seconds); 0 = never.
    pub progress_seconds: f64,
    /// Print one line per epoch.
    pub verbose: bool,
    /// Write `last.safetensors`, `best.safetensors`, `optimizer.safetensors`, `state.json`
    /// and `history.json` here after every epoch.
    pub checkpoint_dir: Option<PathBuf>,
    pub eval_batch_size: usize,
}

impl Default for TrainConfig {
    fn default() -> Self {
        TrainConfig {
            epochs: 10,
            batch_size: 256,
            optimizer: OptimizerKind::adam(),
            learning_rate: 1e-3,
            weight_decay: 0.0,
            model_l2: true,
            early_stopping_patience: Some(5),
            reduce_lr: Some(ReduceLrOnPlateau {
                factor: 0.2,
                patience: 3,
                min_lr: 1e-5,
            }),
            restore_best: true,
            augment: AugmentConfig::default(),
            seed: 13,
            progress_seconds: 20.0,
            verbose: true,
            checkpoint_dir: None,
            eval_batch_size: 1000,
        }
    }
}

impl TrainConfig {
    /// The original CNN run with its intended settings: Adam at 1e-3 (what the original really
    /// used; it built 0.01 but compiled the string "adam"), batch 256, early stopping 5,
    /// reduce-LR 0.2 after 2 flat epochs (the original's patience 5 with a floor of 1e-3 never
    /// fired at 1e-3), the original CNN augmentation.
    pub fn cnn4(epochs: usize, batch_size: usize) -> TrainConfig {
        TrainConfig {
            epochs,
            batch_size,
            reduce_lr: Some(ReduceLrOnPlateau {
                factor: 0.2,
                patience: 2,
                min_lr: 1e-5,
            }),
            augment: AugmentConfig::original_cnn(),
            ..Default::default()
        }
    }

    /// The original ResNet run: Adam 1e-3, reduce-LR 0.1 after 5 flat epochs, flips, shifts and
    /// random erasing.
    pub fn resnet(epochs: usize, batch_size: usize) -> TrainConfig {
        TrainConfig {
            epochs,
            batch_size,
            reduce_lr: Some(ReduceLrOnPlateau {
                factor: 0.1,
                patience: 5,
                min_lr: 1e-6,
            }),
            augment: AugmentConfig::original_resnet(),
            ..Default::default()
        }
    }

    fn validate(&self) -> Result<()> {
        if self.batch_size == 0 || self.eval_batch_size == 0 {
            return Err(Error::param("batch_size", "must be at least 1"));
        }
        if !(self.learning_rate > 0.0 && self.learning_rate.is_finite()) {
            return Err(Error::param(
                "learning_rate",
                format!("{} must be positive", self.learning_rate),
            ));
        }
        if self.weight_decay < 0.0 {
            return Err(Error::param("weight_decay", "must not be negative"));
        }
        Ok(())
    }
}

/// The training settings a profile gives a network (epochs, batch size, the original's pipeline).
pub fn profile_setup(kind: ModelKind, profile: &crate::Profile) -> TrainConfig {
    match kind {
        ModelKind::Cnn4 => TrainConfig::cnn4(profile.cnn_epochs, profile.cnn_batch_size),
        ModelKind::ResNet => TrainConfig::resnet(profile.resnet_epochs, profile.resnet_batch_size),
    }
}

/// The images a profile trains, validates and tests a network on.
#[derive(Clone, Debug)]
pub struct ProfileSets {
    pub train: ImageSet,
    pub validation: ImageSet,
    pub test: ImageSet,
}

/// The seeded 80/20 split of the training set (seed 13, as the original) cut to the profile's
/// training subset for `kind` and its validation subset, and the profile's test subset.
pub fn profile_sets(
    kind: ModelKind,
    profile: &crate::Profile,
    data: &FashionMnist,
) -> Result<ProfileSets> {
    let split =
        crate::data::train_validation_split(&data.train, &crate::data::SplitConfig::default())?;
    let train_subset = match kind {
        ModelKind::Cnn4 => profile.train_subset,
        ModelKind::ResNet => profile.resnet_train_subset.or(profile.train_subset),
    };
    let cut = |set: ImageSet, n: Option<usize>| match n {
        Some(n) => set.first(n),
        None => set,
    };
    Ok(ProfileSets {
        train: cut(split.train, train_subset),
        validation: cut(split.validation, profile.validation_subset),
        test: profile.test_set(data),
    })
}

/// One epoch's figures.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EpochRecord {
    /// 1-based.
    pub epoch: usize,
    pub train_loss: f64,
    pub train_accuracy: f64,
    pub val_loss: f64,
    pub val_accuracy: f64,
    pub learning_rate: f64,
    pub seconds: f64,
    pub images_per_s: f64,
}

/// Per-epoch figures of a run.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct History {
    pub model: String,
    pub epochs: Vec<EpochRecord>,
    /// Why training stopped ("completed", "early stopping after epoch N").
    pub stop_reason: String,
}

impl History {
    /// The epoch with the lowest validation loss.
    pub fn best(&self) -> Option<&EpochRecord> {
        self.epochs
            .iter()
            .min_by(|a, b| a.val_loss.total_cmp(&b.val_loss))
    }

    /// Writes the history as JSON (atomically).
    pub fn save(&self, path: &Path) -> Result<()> {
        let text = serde_json::to_vec_pretty(self).map_err(|e| Error::Json {
            path: path.into(),
            source: e,
        })?;
        write_atomic(path, &text)
    }

    /// Reads a history written by [`History::save`].
    pub fn load(path: &Path) -> Result<History> {
        let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
        serde_json::from_slice(&bytes).map_err(|e| Error::Json {
            path: path.into(),
            source: e,
        })
    }
}

/// Loss and accuracy on a labelled set.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Evaluation {
    pub loss: f64,
    pub accuracy: f64,
    pub images: usize,
}

/// What a finished run reports: written as `result.json` beside its checkpoints, read by the
/// summary of `make run` and by the evaluation notebooks.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunResult {
    pub model: String,
    pub profile: String,
    pub device: String,
    pub train_images: usize,
    pub epochs_run: usize,
    pub stop_reason: String,
    pub train_seconds: f64,
    pub best_val_accuracy: Option<f64>,
    pub test_accuracy: f64,
    pub test_loss: f64,
    pub test_images: usize,
}

impl RunResult {
    /// Collects the figures of a trained `trainer` evaluated on `test`.
    pub fn new(
        trainer: &Trainer,
        profile: &str,
        train_images: usize,
        train_seconds: f64,
        test: &Evaluation,
    ) -> RunResult {
        RunResult {
            model: trainer.history.model.clone(),
            profile: profile.to_string(),
            device: format!("{:?}", trainer.device),
            train_images,
            epochs_run: trainer.history.epochs.len(),
            stop_reason: trainer.history.stop_reason.clone(),
            train_seconds,
            best_val_accuracy: trainer.history.best().map(|b| b.val_accuracy),
            test_accuracy: test.accuracy,
            test_loss: test.loss,
            test_images: test.images,
        }
    }

    /// Writes `result.json` into `dir` (atomically).
    pub fn save(&self, dir: &Path) -> Result<()> {
        let path = dir.join("result.json");
        let text = serde_json::to_vec_pretty(self).map_err(|e| Error::Json {
            path: path.clone(),
            source: e,
        })?;
        write_atomic(&path, &text)
    }
}

/// Counters that a resumed run must continue from.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
struct TrainerState {
    model: String,
    epochs_done: usize,
    learning_rate: f64,
    optimizer_steps: i64,
    best_val_loss: Option<f64>,
    epochs_since_best: usize,
    epochs_since_lr_change: usize,
    plateau_best: Option<f64>,
    stopped: bool,
}

/// Loads libtorch's CUDA library when it exists, so that CUDA becomes visible to `tch`
/// (cells and binaries otherwise drop it at link time), then returns the GPU if there is
/// one and the CPU otherwise. Harmless on a machine without CUDA.
pub fn best_device() -> Device {
    #[cfg(target_os = "linux")]
    {
        use libloading::os::unix::{Library, RTLD_GLOBAL, RTLD_NOW};
        // SAFETY: loading libtorch's own CUDA library only runs its static initialisers, which
        // register the CUDA backend with the libtorch already loaded in this process.
        if let Ok(lib) = unsafe { Library::open(Some("libtorch_cuda.so"), RTLD_NOW | RTLD_GLOBAL) }
        {
            std::mem::forget(lib); // keep it loaded for the life of the process
        }
    }
    Device::cuda_if_available()
}

/// A network with its variables, optimiser state and history: everything a notebook keeps.
pub struct Trainer {
    pub config: TrainConfig,
    pub history: History,
    pub device: Device,
    vs: nn::VarStore,
    model: Box<dyn Classifier>,
    moments: Vec<(String, Tensor, Tensor)>,
    state: TrainerState,
    /// Best weights so far, kept in memory when no checkpoint folder is set.
    best_weights: Option<Vec<(String, Tensor)>>,
    /// libtorch's own optimiser over the same variables, used only for its `zero_grad`, which
    /// drops the gradients (set to None) instead of zeroing them: the next backward then writes
    /// fresh gradients instead of adding into zeroed ones (two fewer passes over the weights).
    grad_reset: tch::COptimizer,
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
    /// A fresh network of `kind` (original settings) on `device`.
    pub fn new(kind: ModelKind, config: TrainConfig, device: Device) -> Result<Trainer> {
        config.validate()?;
        tch::manual_seed(config.seed as i64);
        let vs = nn::VarStore::new(device);
        let model = models::build(kind, &vs.root())?;
        Self::with_model(vs, model, config)
    }

    /// A trainer around a network the caller built under `vs` (e.g. a `Cnn4` with another config).
    pub fn with_model(
        vs: nn::VarStore,
        model: Box<dyn Classifier>,
        config: TrainConfig,
    ) -> Result<Trainer> {
        config.validate()?;
        let device = vs.device();
        let mut names: Vec<(String, Tensor)> = vs
            .variables()
            .into_iter()
            .filter(|(_, t)| t.requires_grad())
            .collect();
        names.sort_by(|a, b| a.0.cmp(&b.0));
        let moments = names
            .into_iter()
            .map(|(n, t)| (n, t.zeros_like(), t.zeros_like()))
            .collect();
        let mut grad_reset = tch::COptimizer::sgd(0.0, 0.0, 0.0, 0.0, false)?;
        for (_, t) in vs.variables().iter().filter(|(_, t)| t.requires_grad()) {
            grad_reset.add_parameters(t, 0)?;
        }
        let state = TrainerState {
            model: model.kind().to_string(),
            learning_rate: config.learning_rate,
            ..Default::default()
        };
        Ok(Trainer {
            history: History {
                model: model.kind().to_string(),
                ..Default::default()
            },
            config,
            device,
            vs,
            model,
            moments,
            state,
            best_weights: None,
            grad_reset,
        })
    }

    /// The network.
    pub fn model(&self) -> &dyn Classifier {
        self.model.as_ref()
    }

    /// The variables (to save, load or inspect).
    pub fn var_store(&self) -> &nn::VarStore {
        &self.vs
    }

    /// The current learning rate.
    pub fn learning_rate(&self) -> f64 {
        self.state.learning_rate
    }

    /// Completed epochs.
    pub fn epochs_done(&self) -> usize {
        self.state.epochs_done
    }

    fn optimizer_step(&mut self) -> Result<()> {
        self.state.optimizer_steps += 1;
        let t = self.state.optimizer_steps as f64;
        let lr = self.state.learning_rate;
        let wd = self.config.weight_decay;
        let vars = self.vs.variables();
        tch::no_grad(|| -> Result<()> {
            for (name, m, v) in &mut self.moments {
                let Some(p) = vars.get(name) else { continue };
                let g = p.grad();
                if !g.defined() {
                    continue;
                }
                let mut p = p.shallow_clone();
                if wd > 0.0 {
                    let _ = p.f_mul_scalar_(1.0 - lr * wd)?;
                }
                match self.config.optimizer {
                    OptimizerKind::Adam { beta1, beta2, eps } => {
                        // p -= lr / bc1 · m / (sqrt(v) / sqrt(bc2) + eps), in place with one
                        // temporary buffer: addcdiv adds m / d with d = -(sqrt(v)/sqrt(bc2) + eps) · bc1 / lr.
                        let (bc1, bc2) = (1.0 - beta1.powf(t), 1.0 - beta2.powf(t));
                        let _ = m.f_lerp_(&g, 1.0 - beta1)?;
                        let _ = v.f_mul_scalar_(beta2)?;
                        let _ = v.f_addcmul_(&g, &(&g * (1.0 - beta2)))?;
                        let mut d = v.f_sqrt()?;
                        let _ = d.f_mul_scalar_(-bc1 / (lr * bc2.sqrt()))?;
                        let _ = d.f_add_scalar_(-bc1 * eps / lr)?;
                        let _ = p.f_addcdiv_(m, &d)?;
                    }
                    OptimizerKind::Sgd { momentum, nesterov } => {
                        if momentum > 0.0 {
                            let _ = m.f_mul_scalar_(momentum)?.f_add_(&g)?;
                            let step = if nesterov {
                                &g + &*m * momentum
                            } else {
                                m.shallow_clone()
                            };
                            let _ = p.f_sub_(&(step * lr))?;
                        } else {
                            let _ = p.f_sub_(&(&g * lr))?;
                        }
                    }
                }
            }
            Ok(())
        })
    }

    /// One optimisation step on a batch: forward, loss (+ L2), NaN guard, backward, update.
    /// Returns the data loss (without L2) and the logits.
    fn train_step(
        &mut self,
        xb: &Tensor,
        yb: &Tensor,
        epoch: usize,
        batch: usize,
    ) -> Result<(Tensor, Tensor)> {
        let logits = self.model.forward_t(xb, true);
        let data_loss = logits.cross_entropy_for_logits(yb);
        let loss = if self.config.model_l2 {
            &data_loss + self.model.l2_penalty()
        } else {
            data_loss.shallow_clone()
        };
        let value = loss.double_value(&[]);
        if !value.is_finite() {
            self.state.stopped = true;
            return Err(Error::param(
                "learning_rate",
                format!(
                    "the training loss became {value} at epoch {epoch}, batch {batch} (learning rate {:.2e}); \
                     lower the learning rate or check the data (the weights were not updated with it)",
                    self.state.learning_rate
                ),
            ));
        }
        self.zero_grad()?;
        loss.backward();
        self.optimizer_step()?;
        Ok((data_loss, logits))
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
        run(self, 3)?;
        let seconds = run(self, steps)?;
        Ok((steps * bs) as f64 / seconds)
    }

    fn zero_grad(&mut self) -> Result<()> {
        Ok(self.grad_reset.zero_grad()?)
    }

    /// Trains on `train`, validating on `validation` after every epoch, until `config.epochs`
    /// epochs are done in total (a resumed trainer continues where it stopped) or early stopping.
    pub fn fit(&mut self, train: &ImageSet, validation: &ImageSet) -> Result<&History> {
        if train.is_empty() || validation.is_empty() {
            return Err(Error::param(
                "train",
                "the training and validation sets must not be empty",
            ));
        }
        let x_train = train.images_tensor().to_device(self.device);
        let y_train = train.labels_tensor().to_device(self.device);
        let n = train.len();
        let bs = self.config.batch_size.min(n);
        let batches = n.div_ceil(bs);
        while self.state.epochs_done < self.config.epochs && !self.state.stopped {
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
            let augment = !self.config.augment.is_identity();
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
                    println!(
                        "  epoch {epoch}: batch {}/{batches}, loss {:.4}, {:.0} images/s",
                        b + 1,
                        loss_sum.double_value(&[]) / seen as f64,
                        seen as f64 / start.elapsed().as_secs_f64()
                    );
                    last_print = Instant::now();
                }
            }
            let train_seconds = start.elapsed().as_secs_f64();
            let val = self.evaluate(validation)?;
            let record = EpochRecord {
                epoch,
                train_loss: loss_sum.double_value(&[]) / n as f64,
                train_accuracy: correct.int64_value(&[]) as f64 / n as f64,
                val_loss: val.loss,
                val_accuracy: val.accuracy,
                learning_rate: self.state.learning_rate,
                seconds: start.elapsed().as_secs_f64(),
                images_per_s: n as f64 / train_seconds,
            };
            if self.config.verbose {
                println!(
                    "epoch {epoch:>3}/{}  train loss {:.4} acc {:.4} | val loss {:.4} acc {:.4} | lr {:.1e} | {:.1} s, {:.0} images/s",
                    self.config.epochs,
                    record.train_loss,
                    record.train_accuracy,
                    record.val_loss,
                    record.val_accuracy,
                    record.learning_rate,
                    record.seconds,
                    record.images_per_s
                );
            }
            self.history.epochs.push(record);
            self.end_of_epoch(val.loss)?;
        }
        if self.history.stop_reason.is_empty() {
            self.history.stop_reason = "completed".into();
        }
        if self.config.restore_best {
            if let Some(dir) = self.config.checkpoint_dir.clone() {
                let best = dir.join("best.safetensors");
                if best.is_file() {
                    self.vs.load(&best)?;
                }
            } else if let Some(w) = self.best_weights.take() {
                self.load_weights_from(&w)?;
            }
        }
        Ok(&self.history)
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
        if let Some(r) = self.config.reduce_lr {
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
                        println!("  reducing the learning rate to {new_lr:.1e} (no better validation loss for {} epochs)", r.patience);
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
                    println!("  {}", self.history.stop_reason);
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
        self.vs
            .variables()
            .into_iter()
            .map(|(n, t)| (n, t.detach().copy()))
            .collect()
    }

    fn load_weights_from(&mut self, weights: &[(String, Tensor)]) -> Result<()> {
        let vars = self.vs.variables();
        tch::no_grad(|| -> Result<()> {
            for (n, w) in weights {
                if let Some(v) = vars.get(n) {
                    v.shallow_clone().f_copy_(w)?;
                }
            }
            Ok(())
        })
    }

    fn save_vs_atomic(&self, path: &Path) -> Result<()> {
        let dir = path.parent().unwrap_or(Path::new("."));
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let tmp = dir.join(format!(".{name}.tmp-{}.safetensors", std::process::id()));
        self.vs.save(&tmp)?;
        std::fs::rename(&tmp, path).map_err(|e| Error::io(path, e))
    }

    /// Writes `last.safetensors` (weights), `optimizer.safetensors`, `state.json`,
    /// `history.json`, and `best.safetensors` when `is_best`; every file atomically.
    pub fn save_checkpoint(&self, dir: &Path, is_best: bool) -> Result<()> {
        self.save_vs_atomic(&dir.join("last.safetensors"))?;
        if is_best {
            self.save_vs_atomic(&dir.join("best.safetensors"))?;
        }
        let mut named: Vec<(String, Tensor)> = Vec::new();
        for (n, m, v) in &self.moments {
            named.push((format!("m/{n}"), m.shallow_clone()));
            named.push((format!("v/{n}"), v.shallow_clone()));
        }
        let tmp = dir.join(format!(".optimizer.tmp-{}.safetensors", std::process::id()));
        Tensor::write_safetensors(&named, &tmp)?;
        let opt = dir.join("optimizer.safetensors");
        std::fs::rename(&tmp, &opt).map_err(|e| Error::io(&opt, e))?;
        self.history.save(&dir.join("history.json"))?;
        let state_path = dir.join("state.json");
        let text = serde_json::to_vec_pretty(&self.state).map_err(|e| Error::Json {
            path: state_path.clone(),
            source: e,
        })?;
        write_atomic(&state_path, &text)
    }

    /// Continues from the last checkpoint in `dir` (weights, optimiser moments and step count,
    /// learning rate, early-stopping counters and history). `config` may raise `epochs`.
    pub fn resume(
        kind: ModelKind,
        config: TrainConfig,
        device: Device,
        dir: &Path,
    ) -> Result<Trainer> {
        let mut t = Trainer::new(kind, config, device)?;
        let state_path = dir.join("state.json");
        let bytes = std::fs::read(&state_path).map_err(|e| Error::io(&state_path, e))?;
        let state: TrainerState = serde_json::from_slice(&bytes).map_err(|e| Error::Json {
            path: state_path.clone(),
            source: e,
        })?;
        if state.model != t.state.model {
            return Err(Error::data(
                &state_path,
                "model",
                format!(
                    "the checkpoint is of a {} network, not a {}",
                    state.model, t.state.model
                ),
            ));
        }
        t.vs.load(dir.join("last.safetensors"))?;
        let opt_path = dir.join("optimizer.safetensors");
        let saved: std::collections::HashMap<String, Tensor> =
            Tensor::read_safetensors(&opt_path)?.into_iter().collect();
        tch::no_grad(|| -> Result<()> {
            for (n, m, v) in &mut t.moments {
                let (Some(sm), Some(sv)) =
                    (saved.get(&format!("m/{n}")), saved.get(&format!("v/{n}")))
                else {
                    return Err(Error::data(
                        &opt_path,
                        n.clone(),
                        "missing optimiser state for this variable",
                    ));
                };
                m.f_copy_(sm)?;
                v.f_copy_(sv)?;
            }
            Ok(())
        })?;
        t.history = History::load(&dir.join("history.json"))?;
        t.state = state;
        // A larger epoch budget lets a run that stopped by reaching its epochs continue.
        if t.state.epochs_done < t.config.epochs && t.history.stop_reason == "completed" {
            t.history.stop_reason.clear();
        }
        Ok(t)
    }

    /// Runs `f` on `set` in batches of `eval_batch_size` (evaluation mode, no gradients) and
    /// concatenates the results on the CPU.
    fn map_batches(&self, set: &ImageSet, f: impl Fn(&Tensor) -> Tensor) -> Result<Tensor> {
        if set.is_empty() {
            return Err(Error::param("set", "no image to run the network on"));
        }
        let x = set.images_tensor();
        let bs = self.config.eval_batch_size as i64;
        let n = set.len() as i64;
        let mut out = Vec::new();
        tch::no_grad(|| {
            let mut i = 0;
            while i < n {
                let len = bs.min(n - i);
                out.push(f(&x.narrow(0, i, len).to_device(self.device)).to_device(Device::Cpu));
                i += len;
            }
        });
        Ok(Tensor::cat(&out, 0))
    }

    /// Class probabilities `[N, 10]` (on the CPU) for `set`, in evaluation mode.
    pub fn predict_proba(&self, set: &ImageSet) -> Result<Tensor> {
        self.map_batches(set, |xb| {
            self.model.forward_t(xb, false).softmax(-1, Kind::Float)
        })
    }

    /// Predictions with probabilities for `set` (evaluation mode).
    pub fn predict(&self, set: &ImageSet) -> Result<crate::metrics::Predictions> {
        crate::metrics::Predictions::from_probabilities(&set.labels, &self.predict_proba(set)?)
    }

    /// The learned features (output of the layer before the classifier) of `set`: `[N, D]` on the CPU.
    pub fn features(&self, set: &ImageSet) -> Result<Tensor> {
        self.map_batches(set, |xb| self.model.features(xb, false))
    }

    /// A trained network of `kind` loaded from a checkpoint (`best.safetensors`), ready to predict.
    pub fn from_checkpoint(kind: ModelKind, checkpoint: &Path, device: Device) -> Result<Trainer> {
        let mut t = Trainer::new(
            kind,
            TrainConfig {
                verbose: false,
                ..Default::default()
            },
            device,
        )?;
        t.load_weights(checkpoint)?;
        Ok(t)
    }

    /// Mean cross-entropy and accuracy on `set` (evaluation mode, no L2 term).
    pub fn evaluate(&self, set: &ImageSet) -> Result<Evaluation> {
        if set.is_empty() {
            return Err(Error::param("set", "cannot evaluate on an empty set"));
        }
        let x = set.images_tensor();
        let y = set.labels_tensor();
        let bs = self.config.eval_batch_size as i64;
        let n = set.len() as i64;
        let (mut loss, mut correct) = (0.0f64, 0i64);
        tch::no_grad(|| -> Result<()> {
            let mut i = 0;
            while i < n {
                let len = bs.min(n - i);
                let xb = x.narrow(0, i, len).to_device(self.device);
                let yb = y.narrow(0, i, len).to_device(self.device);
                let logits = self.model.forward_t(&xb, false);
                loss += logits.cross_entropy_for_logits(&yb).double_value(&[]) * len as f64;
                correct += logits
                    .argmax(1, false)
                    .eq_tensor(&yb)
                    .sum(Kind::Int64)
                    .int64_value(&[]);
                i += len;
            }
            Ok(())
        })?;
        Ok(Evaluation {
            loss: loss / n as f64,
            accuracy: correct as f64 / n as f64,
            images: set.len(),
        })
    }

    /// Loads weights saved by a checkpoint (`best.safetensors` or `last.safetensors`).
    pub fn load_weights(&mut self, path: &Path) -> Result<()> {
        if !path.is_file() {
            return Err(Error::io(
                path,
                std::io::Error::new(std::io::ErrorKind::NotFound, "no such checkpoint"),
            ));
        }
        self.vs.load(path)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::augment::AugmentConfig;

    /// `n` images of 10 classes, each class a bright horizontal band at its own height.
    fn bands(n: usize, seed: u64) -> ImageSet {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut set = ImageSet::default();
        for i in 0..n {
            let class = (i % 10) as u8;
            set.labels.push(class);
            for p in 0..784 {
                let on = (p / 28) / 3 == class as usize;
                let noise: u8 = rand::Rng::random_range(&mut rng, 0..60);
                set.images.push(if on { 180 + noise } else { noise });
            }
        }
        set
    }

    fn quick_config(epochs: usize) -> TrainConfig {
        TrainConfig {
            epochs,
            batch_size: 64,
            verbose: false,
            augment: AugmentConfig::original_cnn(),
            ..Default::default()
        }
    }

    #[test]
    fn a_diverging_loss_stops_with_a_clear_error() {
        let (train, val) = (bands(128, 5), bands(20, 6));
        let cfg = TrainConfig {
            optimizer: OptimizerKind::Sgd {
                momentum: 0.9,
                nesterov: false,
            },
            learning_rate: 1e12,
            model_l2: true,
            ..quick_config(3)
        };
        let mut t = Trainer::new(ModelKind::Cnn4, cfg, Device::Cpu).unwrap();
        let err = t.fit(&train, &val).unwrap_err().to_string();
        assert!(
            err.contains("training loss became") && err.contains("epoch"),
            "{err}"
        );
    }

    #[test]
    fn early_stopping_and_reduce_lr_follow_the_validation_loss() {
        let cfg = TrainConfig {
            early_stopping_patience: Some(3),
            reduce_lr: Some(ReduceLrOnPlateau {
                factor: 0.5,
                patience: 1,
                min_lr: 2e-4,
            }),
            ..quick_config(10)
        };
        let mut t = Trainer::new(ModelKind::Cnn4, cfg, Device::Cpu).unwrap();
        let mut lrs = Vec::new();
        for loss in [1.0, 0.9, 0.95, 0.96, 0.97] {
            t.end_of_epoch(loss).unwrap();
            lrs.push(t.learning_rate());
        }
        assert_eq!(lrs, vec![1e-3, 1e-3, 5e-4, 2.5e-4, 2e-4]);
        assert!(
            t.state.stopped,
            "three epochs without improvement after epoch 2"
        );
        assert!(
            t.history.stop_reason.contains("after epoch 5"),
            "{}",
            t.history.stop_reason
        );
    }

    #[test]
    fn bad_settings_are_errors() {
        let bad = TrainConfig {
            learning_rate: 0.0,
            ..Default::default()
        };
        assert!(Trainer::new(ModelKind::Cnn4, bad, Device::Cpu).is_err());
        let mut t = Trainer::new(ModelKind::Cnn4, quick_config(1), Device::Cpu).unwrap();
        assert!(t.fit(&ImageSet::default(), &bands(10, 1)).is_err());
        assert!(t
            .load_weights(Path::new("/nonexistent/best.safetensors"))
            .is_err());
    }
}
