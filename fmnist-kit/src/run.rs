//! One call for a training run of a profile, the same for `fmnist train` and the notebooks:
//! [`TrainingRun::prepare`] picks the profile's sets and settings for a network and builds (or
//! resumes) its trainer; [`TrainingRun::fit`] trains, evaluates the best weights on the test
//! set and writes `result.json` beside the checkpoints.
//!
//! ```no_run
//! # fn main() -> fmnist_kit::Result<()> {
//! use fmnist_kit::{data, models::ModelKind, run::{RunOptions, TrainingRun}, Profile};
//! let data = data::load(data::default_data_path())?;
//! let profile = Profile::from_env()?;
//! let mut run = TrainingRun::prepare(ModelKind::Cnn4, &profile, &data, RunOptions::default())?;
//! let result = run.fit()?;
//! println!("test accuracy {:.4}", result.test_accuracy);
//! # Ok(()) }
//! ```

use std::path::PathBuf;

use tch::Device;

use crate::augment::AugmentConfig;
use crate::data::FashionMnist;
use crate::error::{Error, Result};
use crate::models::{ModelKind, NetworkConfig, Weights};
use crate::profile::{Profile, ProfileSets};
use crate::train::{
    best_device, CheckpointDir, InterruptGuard, Precision, Recipe, RunResult, TrainConfig, Trainer,
};
use crate::util::{content_hash, json_key, progress_line, read_json, write_json_atomic};

/// What a run may change from its profile's settings, for every kind of run: a network trained
/// from scratch ([`TrainingRun`]) and a transfer run ([`crate::transfer::TransferRun`], which
/// also reads `weights` and `image_size`). The defaults change nothing.
#[derive(Clone, Debug, PartialEq)]
pub struct RunOptions {
    /// Another recipe than the profile's.
    pub recipe: Option<Recipe>,
    /// Another epoch count than the profile's.
    pub epochs: Option<usize>,
    /// Another batch size than the profile's.
    pub batch_size: Option<usize>,
    /// Another (peak) learning rate than the recipe's.
    pub learning_rate: Option<f64>,
    /// Another label smoothing than the recipe's (see [`crate::train::TrainConfig`]).
    pub label_smoothing: Option<f64>,
    /// Score with or without test-time flip, whatever the recipe says.
    pub test_time_flip: Option<bool>,
    /// Train with the recipe's augmentation (default) or without any.
    pub augment: bool,
    pub seed: u64,
    /// The checkpoint folder [default: `artifacts/<profile>/<model>`].
    pub out: Option<PathBuf>,
    /// Continue from the checkpoint folder when it holds this same run (its `run-key.json`
    /// names the network, the settings but the epoch count, the seed and the images): an
    /// unfinished run continues after its last epoch, a finished one is read back (its best
    /// weights, history and test figures) instead of trained again. The default.
    pub resume: bool,
    /// Train from the first epoch whatever the checkpoint folder holds [default: false, or
    /// true when the environment has `FMNIST_TRAIN_AGAIN=1`, as the notebook harness sets it].
    pub train_again: bool,
    /// One line per epoch (and progress lines inside long epochs).
    pub verbose: bool,
    /// [default: the GPU when there is one, else the CPU]
    pub device: Option<Device>,
    /// Another precision of forward passes than fp32 (see [`Precision`]).
    pub precision: Option<Precision>,
    /// Transfer runs: the trunk's weights [default: the backbone's ImageNet weights; an error
    /// when there are none].
    pub weights: Option<Weights>,
    /// Networks that resize their input: another side than the profile's.
    pub image_size: Option<usize>,
    /// Log the run for TensorBoard, in `<checkpoints>/tensorboard` (see
    /// [`crate::train::TensorBoardSink`]) [default: true].
    pub tensorboard: bool,
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions {
            recipe: None,
            epochs: None,
            batch_size: None,
            learning_rate: None,
            label_smoothing: None,
            test_time_flip: None,
            augment: true,
            seed: 13,
            out: None,
            resume: true,
            train_again: std::env::var_os("FMNIST_TRAIN_AGAIN").is_some_and(|v| v == "1"),
            verbose: true,
            device: None,
            precision: None,
            weights: None,
            image_size: None,
            tensorboard: true,
        }
    }
}

impl RunOptions {
    /// The recipe of a run of `profile`: these options' or the profile's.
    pub fn recipe_for(&self, profile: &Profile) -> Recipe {
        self.recipe.unwrap_or(profile.recipe)
    }

    /// The checkpoint folder of a run of `kind` in `profile`: these options' or
    /// `artifacts/<profile>/<model>`.
    pub fn checkpoints(&self, profile: &Profile, kind: ModelKind) -> CheckpointDir {
        CheckpointDir(
            self.out
                .clone()
                .unwrap_or_else(|| profile.checkpoint_dir(kind).0),
        )
    }

    /// Changes a recipe's `config` as these options say: learning rate, label smoothing,
    /// test-time flip, augmentation (off), precision and verbosity.
    pub fn adjust(&self, config: &mut TrainConfig) {
        if let Some(r) = self.learning_rate {
            config.learning_rate = r;
        }
        if let Some(e) = self.label_smoothing {
            config.label_smoothing = e;
        }
        if let Some(f) = self.test_time_flip {
            config.test_time_flip = f;
        }
        if !self.augment {
            config.augment = AugmentConfig::default();
        }
        if let Some(p) = self.precision {
            config.precision = p;
        }
        config.verbose = self.verbose;
    }

    /// The device of the run: these options' or the best there is.
    pub fn device(&self) -> Device {
        self.device.unwrap_or_else(best_device)
    }
}

/// The file of a checkpoint folder naming the run its checkpoints belong to (a hash).
pub const RUN_KEY: &str = "run-key.json";

/// A hash of what a checkpoint continues: the network, every setting except the epoch count
/// (so that more epochs extend a finished run), verbosity and the folder, and the training and
/// validation images.
fn run_key(
    kind: ModelKind,
    network: &NetworkConfig,
    config: &TrainConfig,
    sets: &ProfileSets,
) -> Result<String> {
    let settings = TrainConfig {
        epochs: 0,
        verbose: false,
        progress_seconds: 0.0,
        checkpoint_dir: None,
        tensorboard_dir: None,
        ..config.clone()
    };
    let images: Vec<String> = [&sets.train, &sets.validation]
        .iter()
        .map(|s| content_hash([s.images.as_slice(), s.labels.as_slice()]))
        .collect();
    json_key(
        &(kind, format!("{network:?}"), &settings, images),
        std::path::Path::new(RUN_KEY),
    )
}

/// Removes the TensorBoard event files directly in `dir` (none is fine).
fn remove_event_files(dir: &std::path::Path) -> Result<()> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Ok(());
    };
    for path in entries.filter_map(|e| e.ok().map(|e| e.path())) {
        if path.is_file() && path.to_string_lossy().contains("tfevents") {
            std::fs::remove_file(&path).map_err(|e| Error::io(&path, e))?;
        }
    }
    Ok(())
}

/// A profile's training run of one network: its sets, its trainer and, once fitted, its result.
#[derive(Debug)]
pub struct TrainingRun {
    pub kind: ModelKind,
    pub profile: Profile,
    pub sets: ProfileSets,
    pub trainer: Trainer,
    pub checkpoints: CheckpointDir,
    /// Epochs already done when the run was resumed from its checkpoint; `None` for a fresh run.
    pub resumed_after: Option<usize>,
    /// What [`TrainingRun::prepare`] did with the checkpoint folder, in one line (also printed
    /// when the options are verbose).
    pub start: String,
    /// Set by [`TrainingRun::fit`].
    pub result: Option<RunResult>,
}

impl TrainingRun {
    /// The profile's sets and settings for `kind`, changed by `options`, and a fresh trainer
    /// (or the one saved in the checkpoint folder, with `options.resume`).
    pub fn prepare(
        kind: ModelKind,
        profile: &Profile,
        data: &FashionMnist,
        options: RunOptions,
    ) -> Result<TrainingRun> {
        let mut profile = profile.clone();
        if let Some(r) = options.recipe {
            profile.recipe = r;
        }
        let mut config = profile.train_config(kind);
        if let Some(e) = options.epochs {
            config.epochs = e;
        }
        if let Some(b) = options.batch_size {
            config.batch_size = b;
        }
        config.seed = options.seed;
        options.adjust(&mut config);
        let checkpoints = options.checkpoints(&profile, kind);
        config.checkpoint_dir = Some(checkpoints.0.clone());
        config.tensorboard_dir = options.tensorboard.then(|| checkpoints.tensorboard());
        let sets = profile.sets(kind, data)?;
        let device = options.device();
        // The profile's network; one that resizes its input takes the options' size if given.
        let network = profile.network(kind)?.with_input_size(options.image_size);
        let key = run_key(kind, &network, &config, &sets)?;
        let key_file = checkpoints.path().join(RUN_KEY);
        let saved: Option<String> = read_json(&key_file).ok();
        let same_run = saved.as_deref() == Some(key.as_str()) && checkpoints.can_resume();
        let dir = checkpoints.path().display();
        let (trainer, resumed_after, start) = if options.resume && !options.train_again && same_run
        {
            let t = Trainer::resume(network, config, device, checkpoints.path())?;
            let done = t.epochs_done();
            let finished = t.state.stopped || done >= t.config.epochs;
            let start = if finished {
                format!("{dir} holds this run, finished after {done} epochs: read back (its best weights are scored again; RunOptions {{ train_again: true, .. }} trains it anew)")
            } else {
                format!(
                    "{dir} holds this run up to epoch {done}: training continues with epoch {}",
                    done + 1
                )
            };
            (t, Some(done), start)
        } else {
            let start = if !options.resume || options.train_again || !checkpoints.can_resume() {
                format!("training from the first epoch into {dir}")
            } else {
                format!("{dir} holds another run (network, settings, seed or images differ): training from the first epoch")
            };
            // The folder's resume point belongs to another run now, and so does its result.
            for stale in [checkpoints.state(), checkpoints.result()] {
                if stale.is_file() {
                    std::fs::remove_file(&stale).map_err(|e| Error::io(&stale, e))?;
                }
            }
            // And so does its log (not the learning-rate finder's, in a folder inside).
            remove_event_files(&checkpoints.tensorboard())?;
            (Trainer::new(network, config, device)?, None, start)
        };
        std::fs::create_dir_all(checkpoints.path())
            .map_err(|e| Error::io(checkpoints.path(), e))?;
        write_json_atomic(&key_file, &key)?;
        if options.verbose {
            progress_line(&start);
        }
        Ok(TrainingRun {
            kind,
            profile,
            sets,
            trainer,
            checkpoints,
            resumed_after,
            start,
            result: None,
        })
    }

    /// One line saying what will train where: network, images, device, profile, recipe, epochs.
    pub fn describe(&self) -> String {
        let resumed = self
            .resumed_after
            .map_or(String::new(), |e| format!(", resumed after epoch {e}"));
        format!(
            "training {} on {} images ({} validation) on {:?}, profile {}, {} recipe, {} epochs, batch {}{resumed}",
            self.kind,
            self.sets.train.len(),
            self.sets.validation.len(),
            self.trainer.device,
            self.profile.name,
            self.profile.recipe,
            self.trainer.config.epochs,
            self.trainer.config.batch_size
        )
    }

    /// Trains (the rest of) the run, evaluates the best weights on the profile's test images
    /// and writes `result.json` into the checkpoint folder. Returns the result.
    ///
    /// An interrupt (SIGINT: Ctrl-C, or Jupyter's stop button) stops the training between two
    /// batches: the trainer rolls back to the end of the last finished epoch, the test images are
    /// scored with those weights, and the result (also `result.json`) says
    /// `interrupted_after: Some(k)`. Calling `fit` again continues the run where it stopped.
    pub fn fit(&mut self) -> Result<RunResult> {
        let _interrupt = InterruptGuard::install(&self.trainer.stop_request())?;
        self.trainer.fit(&self.sets.train, &self.sets.validation)?;
        if let Some(k) = self.trainer.interrupted_after() {
            progress_line(&format!(
                "scoring the test images with the weights after epoch {k}; running fit() again continues the training"
            ));
        }
        // All epochs, also those of earlier sittings when the run was resumed.
        let train_seconds = self.trainer.history.seconds();
        let test = self.trainer.evaluate(&self.sets.test)?;
        self.trainer.record_evaluation("test", &test)?;
        let result = self.trainer.result(
            &self.profile.name.to_string(),
            self.sets.train.len(),
            train_seconds,
            &test,
        );
        result.save(self.checkpoints.path())?;
        self.result = Some(result.clone());
        Ok(result)
    }

    /// The result of [`TrainingRun::fit`]; an error before it ran.
    pub fn result(&self) -> Result<&RunResult> {
        self.result.as_ref().ok_or_else(|| Error::NotReady {
            what: "training run",
            message: "not fitted yet: call fit() first".into(),
        })
    }
}

/// Each run's budget beside its result, one row per run: the network, its trainable
/// parameters, the training images, epochs and seconds (training and validation), and the test
/// accuracy. Networks of very different sizes trained for different budgets compare only with
/// these columns beside the accuracy. A run whose `model` is not one of the kit's networks is
/// an error naming it.
pub fn budget_table(results: &[RunResult]) -> Result<crate::display::Html> {
    use crate::display::escape_html;
    let mut html = String::from(
        "<table><tr><th>network</th><th>profile</th><th>trainable parameters</th>\
         <th>training images</th><th>epochs</th><th>training seconds</th>\
         <th>test accuracy</th></tr>",
    );
    for r in results {
        let kind: ModelKind = r.model.parse().map_err(|_| {
            Error::param(
                "model",
                format!(
                    "{:?} (in a result.json) is not one of the kit's networks",
                    r.model
                ),
            )
        })?;
        html.push_str(&format!(
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}{}</td><td>{:.0}</td><td>{:.4}</td></tr>",
            escape_html(kind.spec().title),
            escape_html(&r.profile),
            crate::display::format_value(
                r.trainable_params.unwrap_or(kind.spec().trainable_params) as f64
            ),
            crate::display::format_value(r.train_images as f64),
            r.epochs_run,
            if r.interrupted_after.is_some() { " (interrupted)" } else { "" },
            r.train_seconds,
            r.test_accuracy
        ));
    }
    html.push_str("</table>");
    Ok(crate::display::Html(html))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn result(model: &str, accuracy: f64) -> RunResult {
        RunResult {
            trainable_params: None,
            model: model.into(),
            profile: "quick".into(),
            device: "Cpu".into(),
            train_images: 48_000,
            epochs_run: 6,
            stop_reason: "completed".into(),
            train_seconds: 103.4,
            best_val_accuracy: Some(0.92),
            test_accuracy: accuracy,
            test_loss: 0.3,
            test_images: 10_000,
            settings: String::new(),
            interrupted_after: None,
        }
    }

    #[test]
    fn the_budget_table_gives_each_run_its_parameters_and_budget() {
        let html = budget_table(&[result("cnn4", 0.9180), result("resnet", 0.8667)])
            .unwrap()
            .0;
        assert!(html.contains("<td>660,054</td>") && html.contains("<td>11,178,378</td>"));
        assert!(html.contains("<td>48,000</td><td>6</td><td>103</td><td>0.9180</td>"));
        let narrow = RunResult {
            trainable_params: Some(2_799_818),
            ..result("resnet", 0.9)
        };
        let html = budget_table(&[narrow]).unwrap().0;
        assert!(
            html.contains("<td>2,799,818</td>"),
            "the run's own count: {html}"
        );
        let err = budget_table(&[result("alexnet", 0.5)]).unwrap_err();
        assert!(err.to_string().contains("alexnet"), "{err}");
    }
}
