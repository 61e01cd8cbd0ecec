//! The original's two-stage transfer run, for a profile: stage 1 trains the new head on the
//! frozen trunk's cached features; stage 2 unfreezes all but the first part of the trunk and
//! fine-tunes on the images. Checkpoints, resume, history and `result.json` as for the other
//! networks, plus `transfer.json` with both stages' figures.

use std::path::PathBuf;
use std::time::Instant;

use serde::{Deserialize, Serialize};
use tch::Tensor;

use super::extract::{FeatureExtractor, WeightsRecord};
use super::prepare::{copy_by_name, freeze_early_layers};
use crate::data::FashionMnist;
use crate::error::{Error, Result};
use crate::models::{Backbone, ModelKind, NetworkConfig, TransferConfig, Weights};
use crate::profile::{Profile, ProfileSets};
use crate::run::RunOptions;
use crate::tensorboard::clear_run;
use crate::train::{
    fit_interruptibly, Callback, CheckpointDir, Evaluation, History, InterruptGuard, Precision,
    Recipe, RunResult, TrainConfig, TrainedNetwork, Trainer,
};
use crate::util::{content_hash, json_key, progress_line, read_json, write_json_atomic};

/// Stage 1's outcome: the head trained on frozen features.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StageOne {
    pub history: History,
    /// The frozen trunk + head on the profile's test images.
    pub test: Evaluation,
    /// Extracting (or reading from the cache) the features of train, validation and test.
    pub feature_seconds: f64,
    pub features_from_cache: bool,
    pub train_seconds: f64,
    /// The weights key of the trunk the head was trained on, and the image size.
    pub weights: WeightsRecord,
    pub image_size: usize,
    /// A hash of everything that determines the head (see `TransferRun::stage_one_key`): a
    /// stage 1 is read back only into a run with the same key.
    #[serde(default)]
    pub key: String,
}

/// What `fmnist transfer` reports and `transfer.json` holds: the fine-tuned run's result (as
/// every run's `result.json`), and the transfer run's own fields.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TransferResult {
    /// Stage 2, fine-tuned: its test accuracy and loss, epochs, seconds of all fine-tuning
    /// epochs (training and validation, over every sitting of a resumed run) and settings.
    #[serde(flatten)]
    pub run: RunResult,
    #[serde(flatten)]
    pub transfer: TransferFields,
}

/// What a transfer run reports beyond a run's result: the trunk, and stage 1.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TransferFields {
    pub backbone: Backbone,
    pub weights: WeightsRecord,
    pub image_size: usize,
    pub recipe: Recipe,
    pub validation_images: usize,
    /// Stage 1: frozen ImageNet trunk + trained head.
    pub frozen_test_accuracy: f64,
    pub frozen_test_loss: f64,
    pub feature_seconds: f64,
    pub features_from_cache: bool,
    pub stage1_seconds: f64,
    pub stage1_epochs: usize,
    /// The trunk's variables kept frozen while fine-tuning (name prefixes).
    pub frozen_layers: Vec<String>,
}

/// A profile's two-stage transfer run of one backbone.
pub struct TransferRun {
    pub kind: ModelKind,
    pub backbone: Backbone,
    pub profile: Profile,
    pub sets: ProfileSets,
    pub extractor: FeatureExtractor,
    /// The network fine-tuned in stage 2.
    pub config: TransferConfig,
    pub recipe: Recipe,
    pub checkpoints: CheckpointDir,
    pub stage1: Option<StageOne>,
    /// The stage-1 head (on features), then the stage-2 trainer (on images).
    pub head: Option<TrainedNetwork>,
    pub trainer: Option<Trainer>,
    pub result: Option<TransferResult>,
    options: RunOptions,
    /// Pieces for the stage-2 trainer, added when it is built ([`TransferRun::add_stage_two_callback`]).
    stage2_pieces: Vec<Box<dyn Callback>>,
    stage2_seconds: f64,
    /// True when stage 1 was read back (so stage 2's checkpoint may continue from it).
    stage1_read_back: bool,
}

impl std::fmt::Debug for TransferRun {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "TransferRun({})", self.describe())
    }
}

const STAGE1_HEAD: &str = "stage1-head.safetensors";
const STAGE1: &str = "stage1.json";
const TRANSFER: &str = "transfer.json";
/// The key of the run whose stage-2 checkpoint is in the folder.
const STAGE2_KEY: &str = "stage2-key.json";

impl TransferRun {
    /// The profile's sets and sizes for the transfer network `kind`, and its trunk with
    /// `options.weights` (default: ImageNet's) ready to extract features.
    pub fn prepare(
        kind: ModelKind,
        profile: &Profile,
        data: &FashionMnist,
        options: RunOptions,
    ) -> Result<TransferRun> {
        let backbone = kind.spec().backbone.ok_or_else(|| {
            Error::param(
                "model",
                format!("{kind} is not a transfer network (inception-v3, efficientnet-lite0)"),
            )
        })?;
        let sizes = profile.sizes(kind);
        let image_size = options
            .image_size
            .or(sizes.input_size)
            .unwrap_or(backbone.min_input());
        let weights = match &options.weights {
            Some(w) => w.clone(),
            None => Weights::imagenet(backbone)?,
        };
        let device = options.device();
        let mut extractor = FeatureExtractor::new(backbone, &weights, image_size, device)?;
        extractor.set_precision(options.precision.unwrap_or(Precision::Fp32));
        if options.verbose {
            extractor.progress_seconds = 30.0;
        }
        let sets = profile.sets(kind, data)?;
        let checkpoints = options.checkpoints(profile, kind);
        Ok(TransferRun {
            kind,
            backbone,
            profile: profile.clone(),
            sets,
            extractor,
            config: TransferConfig {
                input_size: image_size,
                trunk_train_mode: false,
                ..Default::default()
            },
            recipe: options.recipe_for(profile),
            checkpoints,
            stage1: None,
            head: None,
            trainer: None,
            result: None,
            options,
            stage2_pieces: Vec::new(),
            stage2_seconds: 0.0,
            stage1_read_back: false,
        })
    }

    /// One line: backbone, weights, image size, images, profile, recipe.
    pub fn describe(&self) -> String {
        format!(
            "{} ({}) at {}×{} px: {} training, {} validation, {} test images; profile {}, {} recipe, on {:?}",
            self.backbone.title(),
            self.extractor.weights.label(),
            self.config.input_size,
            self.config.input_size,
            self.sets.train.len(),
            self.sets.validation.len(),
            self.sets.test.len(),
            self.profile.name,
            self.recipe,
            self.extractor.device
        )
    }

    fn say(&self, line: impl AsRef<str>) {
        if self.options.verbose {
            progress_line(line.as_ref());
        }
    }

    /// Stage 1: the trunk's features of the training, validation and test images (from the
    /// cache when there), then the head trained on them, the trunk frozen (its batch-norm
    /// statistics fixed). Kept in the checkpoint folder; with `resume`, a stage 1 done with the
    /// same weights and image size is read back instead of trained again.
    pub fn stage_one(&mut self) -> Result<&StageOne> {
        let dir = self.checkpoints.path().to_path_buf();
        if self.options.resume && !self.options.train_again && self.stage1.is_none() {
            if let Some((one, head)) = self.read_stage_one(&dir)? {
                self.say(format!(
                    "stage 1 read back from {} (frozen test accuracy {:.4})",
                    dir.display(),
                    one.test.accuracy
                ));
                self.stage1 = Some(one);
                self.head = Some(head);
                self.stage1_read_back = true;
            }
        }
        if self.stage1.is_none() {
            let start = Instant::now();
            let mut from_cache = true;
            let mut feats = Vec::new();
            for (name, set) in [
                ("training", &self.sets.train),
                ("validation", &self.sets.validation),
                ("test", &self.sets.test),
            ] {
                let f = self.extractor.extract_cached(set)?;
                self.say(format!(
                    "{name} features {:?}: {} in {:.1} s{}",
                    f.features.size(),
                    if f.from_cache {
                        "from the cache"
                    } else {
                        "extracted"
                    },
                    f.seconds,
                    f.note
                        .as_deref()
                        .map_or(String::new(), |n| format!(" ({n})"))
                ));
                from_cache &= f.from_cache;
                feats.push(f.features);
            }
            let feature_seconds = start.elapsed().as_secs_f64();
            let mut head_config = self
                .recipe
                .head_config(self.profile.transfer_head_epochs, self.options.seed);
            head_config.tensorboard_dir = self.fresh_log("stage1")?;
            let (head, history, train_seconds) = train_head(
                self.backbone,
                &self.config,
                head_config,
                (&feats[0], &self.sets.train.labels_tensor()),
                (&feats[1], &self.sets.validation.labels_tensor()),
                self.options.verbose,
            )?;
            let test = head.evaluate_tensors(&feats[2], &self.sets.test.labels_tensor())?;
            self.say(format!(
                "stage 1: frozen {} + head, test accuracy {:.4} ({} epochs in {:.1} s)",
                self.backbone.title(),
                test.accuracy,
                history.epochs.len(),
                train_seconds
            ));
            let one = StageOne {
                history,
                test,
                feature_seconds,
                features_from_cache: from_cache,
                train_seconds,
                weights: self.extractor.weights.clone(),
                image_size: self.config.input_size,
                key: self.stage_one_key()?,
            };
            head.save_weights(&dir.join(STAGE1_HEAD))?;
            write_json_atomic(&dir.join(STAGE1), &one)?;
            self.stage1 = Some(one);
            self.head = Some(head);
        }
        self.stage1.as_ref().ok_or_else(|| Error::NotReady {
            what: "transfer run",
            message: "stage 1 did not run".into(),
        })
    }

    fn read_stage_one(&self, dir: &std::path::Path) -> Result<Option<(StageOne, TrainedNetwork)>> {
        let (json, weights) = (dir.join(STAGE1), dir.join(STAGE1_HEAD));
        if !json.is_file() || !weights.is_file() {
            return Ok(None);
        }
        let one: StageOne = read_json(&json)?;
        if one.key != self.stage_one_key()? {
            self.say(format!(
                "{} was made with other weights, image size, images, seed or head epochs: stage 1 runs again",
                json.display()
            ));
            return Ok(None);
        }
        let mut head = TrainedNetwork::untrained(
            NetworkConfig::Head(self.backbone, self.config.clone()),
            self.extractor.device,
        )?;
        head.load_weights(&weights)?;
        Ok(Some((one, head)))
    }

    /// A hash of what determines stage 1's head: the trunk's weights, the image size, the
    /// features' precision, the training, validation and test images, the seed and the head's
    /// epochs.
    fn stage_one_key(&self) -> Result<String> {
        let sets: Vec<String> = [&self.sets.train, &self.sets.validation, &self.sets.test]
            .iter()
            .map(|s| content_hash([s.images.as_slice(), s.labels.as_slice()]))
            .collect();
        key_of(&(
            &self.extractor.weights,
            self.config.input_size,
            self.extractor.bf16,
            sets,
            self.options.seed,
            self.profile.transfer_head_epochs,
        ))
    }

    /// A hash of what a stage-2 checkpoint continues: stage 1's key, the recipe, the batch size
    /// and the precision (not the epochs: `--resume --epochs N` extends a finished run).
    fn stage_two_key(&self, batch_size: usize) -> Result<String> {
        key_of(&(
            self.stage_one_key()?,
            self.recipe,
            batch_size,
            self.options.precision.unwrap_or(Precision::Fp32),
        ))
    }

    /// The trainer of stage 2: the transfer network with the extractor's trunk and stage 1's
    /// head, the first part of the trunk frozen ([`Backbone::frozen_when_fine_tuning`]).
    /// The TensorBoard folder of `stage` (`<checkpoints>/tensorboard/<stage>`), emptied of an
    /// earlier run's log; `None` when the options turn logging off.
    fn fresh_log(&self, stage: &str) -> Result<Option<PathBuf>> {
        let dir = self.checkpoints.tensorboard().join(stage);
        clear_run(&dir)?;
        Ok(self.options.tensorboard.then_some(dir))
    }

    fn fine_tune_trainer(&self, config: TrainConfig) -> Result<Trainer> {
        let network = NetworkConfig::Transfer(self.backbone, self.config.clone());
        Trainer::new_with(network, config, self.extractor.device, |vs| {
            copy_by_name(vs, self.extractor.var_store())?;
            if let Some(head) = &self.head {
                copy_by_name(vs, head.var_store())?;
            }
            freeze_early_layers(vs, self.backbone);
            Ok(())
        })
    }

    /// Stage 2: fine-tunes (or, with `resume`, continues fine-tuning) on the augmented images,
    /// keeps the best epoch, evaluates on the test images, writes `result.json` and
    /// `transfer.json`. Runs stage 1 first if it has not run.
    pub fn stage_two(&mut self) -> Result<&TransferResult> {
        if self.stage1.is_none() {
            self.stage_one()?;
        }
        let sizes = self.profile.sizes(self.kind);
        let epochs = self.options.epochs.unwrap_or(sizes.epochs);
        let batch_size = self.options.batch_size.unwrap_or(sizes.batch_size);
        let mut config =
            self.recipe
                .fine_tune_config(self.backbone, epochs, batch_size, self.options.seed);
        self.options.adjust(&mut config);
        config.checkpoint_dir = Some(self.checkpoints.0.clone());
        config.tensorboard_dir = self
            .options
            .tensorboard
            .then(|| self.checkpoints.tensorboard().join("stage2"));
        let key_file = self.checkpoints.path().join(STAGE2_KEY);
        let key = self.stage_two_key(batch_size)?;
        // An interrupted fine-tuning continues in the trainer it stopped in.
        let interrupted = match self.trainer.take() {
            Some(t) if t.interrupted_after().is_some() => Some(t),
            _ => None,
        };
        let continuing = interrupted.is_some();
        let mut trainer = match interrupted {
            Some(t) => {
                self.say(format!(
                    "stage 2 continues after epoch {} (it was interrupted)",
                    t.epochs_done()
                ));
                t
            }
            None => {
                let mut t = self.fine_tune_trainer(config)?;
                for piece in self.stage2_pieces.drain(..) {
                    t.add_callback(piece);
                }
                t
            }
        };
        if !continuing
            && self.options.resume
            && !self.options.train_again
            && self.checkpoints.can_resume()
        {
            // The checkpoint continues only the run it belongs to: the same stage 1 (read
            // back, not trained again), recipe, batch size and precision.
            let saved: Option<String> = read_json(&key_file).ok();
            if self.stage1_read_back && saved.as_deref() == Some(key.as_str()) {
                trainer.restore(self.checkpoints.path())?;
                self.say(format!(
                    "stage 2 resumed from {} after epoch {}",
                    self.checkpoints.path().display(),
                    trainer.epochs_done()
                ));
            } else {
                self.say(format!(
                    "the stage-2 checkpoint in {} belongs to another run (stage 1, recipe, batch size or precision): fine-tuning starts again",
                    self.checkpoints.path().display()
                ));
            }
        }
        write_json_atomic(&key_file, &key)?;
        if !continuing && trainer.epochs_done() == 0 {
            // A fine-tuning from its first epoch: the log of an earlier one goes.
            self.fresh_log("stage2")?;
        }
        if !continuing {
            self.say(format!("stage 2: fine-tuning\n{}", trainer.config));
        }
        let _interrupt = InterruptGuard::install(&trainer.stop_request())?;
        let fitted = trainer
            .fit(&self.sets.train, &self.sets.validation)
            .map(|_| ());
        if let Err(e) = fitted {
            self.trainer = Some(trainer);
            return Err(e);
        }
        if let Some(k) = trainer.interrupted_after() {
            self.say(format!(
                "scoring the test images with the weights after epoch {k}; running stage 2 again continues the fine-tuning"
            ));
        }
        // All epochs, also those of earlier sittings when the run was resumed.
        self.stage2_seconds = trainer.history.seconds();
        let test = trainer.evaluate(&self.sets.test)?;
        trainer.record_evaluation("test", &test)?;
        let run = trainer.result(
            &self.profile.name.to_string(),
            self.sets.train.len(),
            self.stage2_seconds,
            &test,
        );
        run.save(self.checkpoints.path())?;
        let one = self.stage1.as_ref().ok_or_else(|| Error::NotReady {
            what: "transfer run",
            message: "stage 1 did not run".into(),
        })?;
        let result = TransferResult {
            run,
            transfer: TransferFields {
                backbone: self.backbone,
                weights: self.extractor.weights.clone(),
                image_size: self.config.input_size,
                recipe: self.recipe,
                validation_images: self.sets.validation.len(),
                frozen_test_accuracy: one.test.accuracy,
                frozen_test_loss: one.test.loss,
                feature_seconds: one.feature_seconds,
                features_from_cache: one.features_from_cache,
                stage1_seconds: one.train_seconds,
                stage1_epochs: one.history.epochs.len(),
                frozen_layers: self
                    .backbone
                    .frozen_when_fine_tuning()
                    .iter()
                    .map(|p| p.trim_end_matches('.').to_string())
                    .collect(),
            },
        };
        write_json_atomic(&self.checkpoints.path().join(TRANSFER), &result)?;
        self.say(format!(
            "stage 2: fine-tuned test accuracy {:.4} (frozen {:.4}) after {:.0} s",
            result.run.test_accuracy,
            result.transfer.frozen_test_accuracy,
            result.run.train_seconds
        ));
        self.trainer = Some(trainer);
        self.result = Some(result);
        self.result.as_ref().ok_or_else(|| Error::NotReady {
            what: "transfer run",
            message: "stage 2 did not finish".into(),
        })
    }

    /// Adds a piece to the fine-tuning loop of stage 2 (after the configured ones), from the
    /// next trainer stage 2 builds on.
    pub fn add_stage_two_callback(&mut self, piece: Box<dyn Callback>) {
        self.stage2_pieces.push(piece);
    }

    /// Both stages.
    pub fn fit(&mut self) -> Result<TransferResult> {
        self.stage_one()?;
        Ok(self.stage_two()?.clone())
    }
}

/// A short hash of `what`'s JSON.
fn key_of(what: &impl Serialize) -> Result<String> {
    json_key(what, std::path::Path::new(STAGE1))
}

/// Trains a fresh head on trunk features (`[N, D]` with labels `[N]`), where the features are
/// (the CPU for cached features); returns it with its history and the training seconds.
pub(crate) fn train_head(
    backbone: Backbone,
    config: &TransferConfig,
    train_config: TrainConfig,
    train: (&Tensor, &Tensor),
    validation: (&Tensor, &Tensor),
    verbose: bool,
) -> Result<(TrainedNetwork, History, f64)> {
    let mut trainer = Trainer::new(
        NetworkConfig::Head(backbone, config.clone()),
        TrainConfig {
            verbose,
            ..train_config
        },
        train.0.device(),
    )?;
    let start = Instant::now();
    if let Some(k) = fit_interruptibly(&mut trainer, |t| {
        t.fit_tensors(train.0, train.1, validation.0, validation.1)
            .map(|_| ())
    })? {
        return Err(Error::Interrupted {
            what: "the head's training",
            message: format!(
                "stopped after epoch {k} of {}; it takes seconds, and running it again trains it from the start",
                trainer.config.epochs
            ),
        });
    }
    let seconds = start.elapsed().as_secs_f64();
    let history = trainer.history.clone();
    Ok((trainer.into_network(), history, seconds))
}
