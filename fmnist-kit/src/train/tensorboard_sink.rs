//! [`TensorBoardSink`]: the training loop's TensorBoard log, one of its metrics sinks. It
//! writes one run folder of event files (see [`crate::tensorboard`]):
//!
//! | tag | step | what |
//! |---|---|---|
//! | `loss/train`, `accuracy/train` | each epoch's last step | the epoch's mean training loss and accuracy |
//! | `loss/validation`, `accuracy/validation` | the same | the validation figures (left out when not computed) |
//! | `learning_rate`, `images_per_s`, `epoch` | the same | the rate of the epoch's last step, its speed, its number |
//! | `loss/train_step` | every `loss_every` steps | that step's batch loss |
//! | `inputs` (image) | the fit's first step | up to 64 images as the network receives them, after augmentation |
//! | `settings` (text) | the fit's first step | the settings, as the CLI prints them |
//! | `loss/test`, `accuracy/test` and `confusion_matrix/test` (image and text) | the run's last step | when the caller scores the test set |
//!
//! The run is also one session of TensorBoard's HParams view, with its settings ([`hparams_of`]).
//! A resumed run (or a fit after an interrupted one) starts with the restart marker at its
//! next step, so that what a killed or rolled-back epoch logged is shown once.

use std::path::{Path, PathBuf};

use tch::{Device, Kind, Tensor};

use super::callback::{FitStart, MetricsSink};
use super::checkpoint::EpochRecord;
use super::config::{OptimizerKind, TrainConfig};
use super::network::Evaluation;
use super::schedule::LrSchedule;
use crate::data::CLASS_NAMES;
use crate::error::Result;
use crate::tensorboard::{gray_grid_png, heat_map_png, EventWriter, HParam};

/// A run's TensorBoard log, opened at the first fit.
#[derive(Debug)]
pub struct TensorBoardSink {
    dir: PathBuf,
    hparams: bool,
    loss_every: usize,
    writer: Option<EventWriter>,
    /// The highest step logged so far.
    logged_up_to: i64,
    sample_logged: bool,
}

/// The settings of `config` for `model` as TensorBoard hyperparameters.
pub fn hparams_of(model: &str, config: &TrainConfig) -> Vec<(String, HParam)> {
    let optimizer = match config.optimizer {
        OptimizerKind::Adam { .. } => "adam",
        OptimizerKind::Sgd { .. } => "sgd",
    };
    let schedule = match config.schedule {
        LrSchedule::Constant => "constant",
        LrSchedule::ReduceOnPlateau(_) => "reduce on plateau",
        LrSchedule::WarmupCosine { .. } => "warm-up + cosine",
    };
    let n = |x: f64| HParam::Number(x);
    let t = |s: &str| HParam::Text(s.to_string());
    vec![
        ("model".into(), t(model)),
        ("epochs".into(), n(config.epochs as f64)),
        ("batch_size".into(), n(config.batch_size as f64)),
        ("optimizer".into(), t(optimizer)),
        ("learning_rate".into(), n(config.learning_rate)),
        ("schedule".into(), t(schedule)),
        ("weight_decay".into(), n(config.weight_decay)),
        ("model_l2".into(), HParam::Bool(config.model_l2)),
        ("label_smoothing".into(), n(config.label_smoothing)),
        ("augmentation".into(), t(&config.augmentation())),
        ("test_time_flip".into(), HParam::Bool(config.test_time_flip)),
        ("precision".into(), t(&config.precision.to_string())),
        ("seed".into(), n(config.seed as f64)),
    ]
}

impl TensorBoardSink {
    /// A log in the run folder `dir` (created at the first fit), with the run as an HParams
    /// session and the training loss every 20 steps.
    pub fn new(dir: impl Into<PathBuf>) -> TensorBoardSink {
        TensorBoardSink {
            dir: dir.into(),
            hparams: true,
            loss_every: 20,
            writer: None,
            logged_up_to: 0,
            sample_logged: false,
        }
    }

    /// The same, but not an HParams session of its own (a grid fit: its point is the session).
    pub fn without_hparams(mut self) -> TensorBoardSink {
        self.hparams = false;
        self
    }

    /// The training loss every `steps` steps (at least 1).
    pub fn loss_every(mut self, steps: usize) -> TensorBoardSink {
        self.loss_every = steps.max(1);
        self
    }

    /// The run folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn writer(&mut self) -> Result<&mut EventWriter> {
        let w = match self.writer.take() {
            Some(w) => w,
            None => EventWriter::create(&self.dir)?,
        };
        Ok(self.writer.insert(w))
    }

    fn logged(&mut self, step: i64) {
        self.logged_up_to = self.logged_up_to.max(step);
    }
}

impl MetricsSink for TensorBoardSink {
    fn start_fit(&mut self, start: &FitStart<'_>) -> Result<()> {
        let fresh = self.writer.is_none();
        let resumed =
            start.optimizer_steps > 0 && (fresh || self.logged_up_to > start.optimizer_steps);
        let hparams = self.hparams;
        let w = self.writer()?;
        if resumed {
            w.restart_at(start.optimizer_steps + 1)?;
        }
        if fresh {
            if hparams {
                w.hparams_session(&hparams_of(start.model, start.config))?;
            }
            let settings = format!("    {}", start.config.to_string().replace('\n', "\n    "));
            w.text("settings", start.optimizer_steps + 1, &settings)?;
        }
        self.logged_up_to = start.optimizer_steps;
        Ok(())
    }

    fn record_epoch(&mut self, _model: &str, step: i64, r: &EpochRecord) -> Result<()> {
        self.writer()?.scalars(
            step,
            &[
                ("loss/train", r.train_loss),
                ("accuracy/train", r.train_accuracy),
                ("loss/validation", r.val_loss),
                ("accuracy/validation", r.val_accuracy),
                ("learning_rate", r.learning_rate),
                ("images_per_s", r.images_per_s),
                ("epoch", r.epoch as f64),
            ],
        )?;
        self.logged(step);
        Ok(())
    }

    fn loss_every_steps(&self) -> Option<usize> {
        Some(self.loss_every)
    }

    fn record_loss(&mut self, step: i64, loss: f64) -> Result<()> {
        self.writer()?.scalars(step, &[("loss/train_step", loss)])?;
        self.logged(step);
        Ok(())
    }

    fn wants_input_sample(&self) -> bool {
        !self.sample_logged
    }

    fn record_input_sample(&mut self, step: i64, batch: &Tensor) -> Result<()> {
        self.sample_logged = true;
        let size = batch.size();
        let [b, 1, h, w] = size[..] else {
            return Ok(());
        };
        if h != w || b == 0 {
            return Ok(());
        }
        let n = b.min(64);
        let pixels = batch
            .narrow(0, 0, n)
            .to_kind(Kind::Float)
            .to_device(Device::Cpu)
            .contiguous()
            .view([-1]);
        let pixels = Vec::<f32>::try_from(&pixels)?;
        let (png, size) = gray_grid_png(&pixels, n as usize, h as usize, 8)?;
        self.writer()?.image("inputs", step, png, size)?;
        self.logged(step);
        Ok(())
    }

    fn record_evaluation(&mut self, step: i64, split: &str, e: &Evaluation) -> Result<()> {
        let rows: Vec<Vec<f64>> = e
            .confusion
            .iter()
            .map(|row| {
                let total = row.iter().sum::<u64>().max(1) as f64;
                row.iter().map(|&c| c as f64 / total).collect()
            })
            .collect();
        let (png, size) = heat_map_png(&rows, 24)?;
        let mut table = String::from("| true \\ predicted |");
        for name in CLASS_NAMES {
            table.push_str(&format!(" {name} |"));
        }
        table.push_str(&format!("\n|---|{}\n", "---:|".repeat(CLASS_NAMES.len())));
        for (name, row) in CLASS_NAMES.iter().zip(&e.confusion) {
            table.push_str(&format!("| **{name}** |"));
            for c in row {
                table.push_str(&format!(" {c} |"));
            }
            table.push('\n');
        }
        let w = self.writer()?;
        w.scalars(
            step,
            &[
                (&format!("loss/{split}"), e.loss),
                (&format!("accuracy/{split}"), e.accuracy),
            ],
        )?;
        let tag = format!("confusion_matrix/{split}");
        w.image(&tag, step, png, size)?;
        w.text(&tag, step, &table)?;
        self.logged(step);
        Ok(())
    }
}
