//! Continuing a run: from a checkpoint folder ([`Trainer::resume`], [`Trainer::restore`]),
//! and back to the start of an epoch that a stop request interrupted.

use std::path::Path;

use tch::{Device, Tensor};

use super::Trainer;
use crate::error::{Error, Result};
use crate::models::NetworkConfig;
use crate::train::checkpoint::{CheckpointDir, History, LoopState, NetworkFile};
use crate::train::config::TrainConfig;
use crate::util::read_json;

/// What rolling an interrupted epoch back restores: weights, optimiser moments, counters.
pub(super) struct EpochStart {
    weights: Vec<(String, Tensor)>,
    moments: Vec<(Tensor, Tensor)>,
    state: LoopState,
}

impl Trainer {
    /// Continues from the last checkpoint in `dir` (weights, optimiser moments and step count,
    /// learning rate, early-stopping counters and history). `config` may raise `epochs`. The
    /// network is built as the `network.json` there describes it when it names the same network
    /// as `network`.
    pub fn resume(
        network: impl Into<NetworkConfig>,
        config: TrainConfig,
        device: Device,
        dir: &Path,
    ) -> Result<Trainer> {
        let files = CheckpointDir(dir.to_path_buf());
        let network = network.into();
        let network = match NetworkFile::beside(&files.last())? {
            Some(n) if n.model == network.kind() => n.network(&files.network())?,
            _ => network,
        };
        let mut t = Trainer::new(network, config, device)?;
        t.restore(dir)?;
        Ok(t)
    }

    pub(super) fn epoch_start(&self) -> EpochStart {
        EpochStart {
            weights: self.net.copy_of_weights(),
            moments: self.optimizer.copy_of_moments(),
            state: self.state.clone(),
        }
    }

    pub(super) fn roll_back(&mut self, start: EpochStart) -> Result<()> {
        self.net.set_weights(&start.weights)?;
        self.optimizer.set_moments(&start.moments)?;
        self.state = start.state;
        Ok(())
    }

    /// Loads weights saved by a checkpoint (`best.safetensors` or `last.safetensors`).
    pub fn load_weights(&mut self, path: &Path) -> Result<()> {
        self.net.load_weights(path)
    }

    /// Loads the last checkpoint of `dir` into this trainer (built for the same network, with
    /// the same trainable variables): weights, optimiser state, counters and history.
    pub fn restore(&mut self, dir: &Path) -> Result<()> {
        let files = CheckpointDir(dir.to_path_buf());
        let state: LoopState = read_json(&files.state())?;
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
