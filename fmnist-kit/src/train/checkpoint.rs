//! The files of a checkpoint folder: the weights (`best`, `last`), the optimiser moments, the
//! counters a resumed run continues from, the per-epoch history and the finished run's result.
//! Every file is written through a temporary name and a rename.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use tch::Tensor;

use crate::error::{Error, Result};
use crate::models::{ModelKind, NetworkConfig};
use crate::util::{read_json, write_json_atomic};

/// The weights of the epoch with the best validation loss.
pub const BEST_WEIGHTS: &str = "best.safetensors";
/// The weights after the last finished epoch.
pub const LAST_WEIGHTS: &str = "last.safetensors";
/// Adam's (or SGD's) moments, for `--resume`.
pub const OPTIMIZER_STATE: &str = "optimizer.safetensors";
/// The counters a resumed run continues from.
pub const TRAINER_STATE: &str = "state.json";
/// One record per epoch.
pub const HISTORY: &str = "history.json";
/// The finished run's figures ([`RunResult`]).
pub const RESULT: &str = "result.json";
/// Which network, with its configuration ([`NetworkFile`]), so that the weights can be loaded
/// into the same network again.
pub const NETWORK: &str = "network.json";

/// The files of one checkpoint folder.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CheckpointDir(pub PathBuf);

impl CheckpointDir {
    /// The folder itself.
    pub fn path(&self) -> &Path {
        &self.0
    }
    /// `best.safetensors`: what evaluation and feature maps load.
    pub fn best(&self) -> PathBuf {
        self.0.join(BEST_WEIGHTS)
    }
    /// `last.safetensors`.
    pub fn last(&self) -> PathBuf {
        self.0.join(LAST_WEIGHTS)
    }
    /// `optimizer.safetensors`.
    pub fn optimizer(&self) -> PathBuf {
        self.0.join(OPTIMIZER_STATE)
    }
    /// `state.json`.
    pub fn state(&self) -> PathBuf {
        self.0.join(TRAINER_STATE)
    }
    /// `history.json`.
    pub fn history(&self) -> PathBuf {
        self.0.join(HISTORY)
    }
    /// `result.json`.
    pub fn result(&self) -> PathBuf {
        self.0.join(RESULT)
    }
    /// `tensorboard/`: the run's TensorBoard log.
    pub fn tensorboard(&self) -> PathBuf {
        self.0.join("tensorboard")
    }
    /// `network.json`.
    pub fn network(&self) -> PathBuf {
        self.0.join(NETWORK)
    }
    /// True when a run can be resumed from here (its `state.json` exists).
    pub fn can_resume(&self) -> bool {
        self.state().is_file()
    }
}

/// `network.json`: the network a checkpoint folder's weights belong to, and its configuration
/// (as its `Classifier::config` gave it; `null` for the defaults).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NetworkFile {
    pub model: ModelKind,
    #[serde(default)]
    pub config: serde_json::Value,
    /// Evaluations and predictions average the image's and its mirror image's probabilities
    /// ([`super::TrainConfig::test_time_flip`]); absent = false.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub test_time_flip: bool,
}

impl NetworkFile {
    /// The `network.json` in the folder of the weights file `checkpoint`, if there is one.
    pub fn beside(checkpoint: &Path) -> Result<Option<NetworkFile>> {
        let dir = checkpoint.parent().unwrap_or(Path::new("."));
        let path = dir.join(NETWORK);
        if path.is_file() {
            read_json(&path).map(Some)
        } else {
            Ok(None)
        }
    }

    /// The network named beside `checkpoint`: by `network.json`, else by the `model` field of
    /// `result.json` or `state.json` (checkpoints written before `network.json` existed).
    pub fn find(checkpoint: &Path) -> Result<NetworkFile> {
        if let Some(n) = NetworkFile::beside(checkpoint)? {
            return Ok(n);
        }
        let dir = checkpoint.parent().unwrap_or(Path::new("."));
        for name in [RESULT, TRAINER_STATE] {
            let path = dir.join(name);
            if !path.is_file() {
                continue;
            }
            let v: serde_json::Value = read_json(&path)?;
            if let Some(m) = v["model"].as_str() {
                let model = m
                    .parse::<ModelKind>()
                    .map_err(|e| Error::data(&path, "field \"model\"", e.to_string()))?;
                return Ok(NetworkFile {
                    model,
                    config: serde_json::Value::Null,
                    test_time_flip: false,
                });
            }
        }
        Err(Error::UnnamedNetwork {
            path: checkpoint.to_path_buf(),
            names: ModelKind::names(),
        })
    }

    /// What `network.json` holds for `network`, scored as `test_time_flip` says.
    pub fn of(network: &NetworkConfig, test_time_flip: bool) -> NetworkFile {
        NetworkFile {
            model: network.kind(),
            config: network.settings_json(),
            test_time_flip,
        }
    }

    /// The typed network this file describes; settings that do not parse are an error naming
    /// `source` (the file it was read from).
    pub fn network(&self, source: &Path) -> Result<NetworkConfig> {
        NetworkConfig::from_settings_json(self.model, &self.config, source)
    }

    /// Writes `network.json` into `dir` (atomically).
    pub fn save(&self, dir: &Path) -> Result<()> {
        write_json_atomic(&dir.join(NETWORK), self)
    }
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

    /// Mean training throughput over the epochs (images/s), 0 without epochs.
    pub fn mean_images_per_s(&self) -> f64 {
        if self.epochs.is_empty() {
            return 0.0;
        }
        self.epochs.iter().map(|e| e.images_per_s).sum::<f64>() / self.epochs.len() as f64
    }

    /// Seconds of all its epochs (training and validation), over every sitting of a resumed run.
    pub fn seconds(&self) -> f64 {
        self.epochs.iter().map(|e| e.seconds).sum()
    }

    /// Writes the history as JSON (atomically).
    pub fn save(&self, path: &Path) -> Result<()> {
        write_json_atomic(path, self)
    }

    /// Reads a history written by [`History::save`].
    pub fn load(path: &Path) -> Result<History> {
        read_json(path)
    }
}

/// What a finished run reports: written as `result.json` beside its checkpoints, read by the
/// summary of `make run` and by the evaluation notebooks.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunResult {
    pub model: String,
    pub profile: String,
    pub device: String,
    /// Trainable weights of the network this run trained (a profile may narrow it); `None` in
    /// results written before it was recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trainable_params: Option<i64>,
    pub train_images: usize,
    pub epochs_run: usize,
    pub stop_reason: String,
    /// Seconds of all epochs, training and validation, over every sitting of a resumed run.
    pub train_seconds: f64,
    pub best_val_accuracy: Option<f64>,
    pub test_accuracy: f64,
    pub test_loss: f64,
    pub test_images: usize,
    /// The training settings, one per line (`TrainConfig`'s `Display`); empty in results
    /// written before it was recorded.
    #[serde(default)]
    pub settings: String,
    /// Set when the run was interrupted (an interrupt or a stop request) after this many epochs
    /// and has not finished yet: the test figures are those of the last finished epoch's
    /// weights, and fitting again continues the run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interrupted_after: Option<usize>,
}

impl RunResult {
    /// Writes `result.json` into `dir` (atomically).
    pub fn save(&self, dir: &Path) -> Result<()> {
        write_json_atomic(&dir.join(RESULT), self)
    }

    /// Reads the `result.json` of a checkpoint folder.
    pub fn load(dir: &Path) -> Result<RunResult> {
        read_json(&dir.join(RESULT))
    }
}

/// The loop's counters, kept by its pieces (the schedule's position and rate, the best loss,
/// the patience counters) and saved as `state.json` with every checkpoint, so that a resumed run
/// continues from them.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct LoopState {
    pub model: String,
    pub epochs_done: usize,
    pub learning_rate: f64,
    pub optimizer_steps: i64,
    pub best_val_loss: Option<f64>,
    pub epochs_since_best: usize,
    pub epochs_since_lr_change: usize,
    pub plateau_best: Option<f64>,
    pub stopped: bool,
}

/// Writes named tensors to `path` as safetensors, through a temporary file and a rename.
/// Tensors are written as contiguous copies (safetensors stores the default layout only).
pub(crate) fn write_tensors_atomic(path: &Path, named: &[(String, Tensor)]) -> Result<()> {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.tmp-{}.safetensors", std::process::id()));
    let contiguous: Vec<(String, Tensor)> = named
        .iter()
        .map(|(n, t)| (n.clone(), t.contiguous()))
        .collect();
    let written = Tensor::write_safetensors(&contiguous, &tmp)
        .map_err(Error::from)
        .and_then(|()| std::fs::rename(&tmp, path).map_err(|e| Error::io(path, e)));
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written
}
