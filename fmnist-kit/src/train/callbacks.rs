//! The loop's built-in pieces, and which of them a configuration turns on ([`for_config`]):
//! the best epoch ([`BestEpoch`]), progress lines ([`Progress`]), the learning-rate schedule
//! ([`WarmupCosine`] before every step, [`PlateauRule`] after every epoch), early stopping
//! ([`EarlyStopping`]) and checkpoints ([`Checkpointer`]). They run in that order after every
//! epoch.

use std::path::{Path, PathBuf};
use std::time::Instant;

use tch::Tensor;

use super::callback::{Callback, EndContext, EpochContext, StepContext};
use super::checkpoint::{CheckpointDir, History, LoopState};
use super::config::TrainConfig;
use super::network::TrainedNetwork;
use super::optim::Optimizer;
use super::schedule::{LrSchedule, ReduceLrOnPlateau};
use crate::error::Result;
use crate::util::{progress_line, write_json_atomic};

/// The pieces `config` asks for, in the order the loop calls them.
pub fn for_config(config: &TrainConfig) -> Vec<Box<dyn Callback>> {
    let mut pieces: Vec<Box<dyn Callback>> = vec![
        Box::new(BestEpoch::default()),
        Box::new(Progress::default()),
    ];
    match config.schedule {
        LrSchedule::Constant => {}
        LrSchedule::ReduceOnPlateau(r) => pieces.push(Box::new(PlateauRule(r))),
        s @ LrSchedule::WarmupCosine { .. } => pieces.push(Box::new(WarmupCosine(s))),
    }
    if let Some(p) = config.early_stopping_patience {
        pieces.push(Box::new(EarlyStopping { patience: p }));
    }
    if let Some(dir) = &config.checkpoint_dir {
        pieces.push(Box::new(Checkpointer { dir: dir.clone() }));
    }
    pieces
}

/// Tracks the epoch with the lowest validation loss (`state.best_val_loss`, and the epochs
/// since, which early stopping reads), tells the later pieces whether this epoch improved, and
/// with `restore_best` loads that epoch's weights when the run ends: from the checkpoint
/// folder's `best.safetensors`, or from a copy kept in memory when there is no folder.
#[derive(Default)]
pub struct BestEpoch {
    best_weights: Option<Vec<(String, Tensor)>>,
}

impl Callback for BestEpoch {
    fn name(&self) -> &'static str {
        "best epoch"
    }

    fn after_epoch(&mut self, ctx: &mut EpochContext<'_>) -> Result<()> {
        let val_loss = ctx.record.val_loss;
        let improved = ctx.state.best_val_loss.is_none_or(|b| val_loss < b);
        if improved {
            ctx.state.best_val_loss = Some(val_loss);
            ctx.state.epochs_since_best = 0;
        } else {
            ctx.state.epochs_since_best += 1;
        }
        ctx.improved = improved;
        if improved && ctx.config.restore_best && ctx.config.checkpoint_dir.is_none() {
            self.best_weights = Some(ctx.network.copy_of_weights());
        }
        Ok(())
    }

    fn after_run(&mut self, ctx: &mut EndContext<'_>) -> Result<()> {
        if !ctx.config.restore_best {
            return Ok(());
        }
        if let Some(dir) = &ctx.config.checkpoint_dir {
            let best = CheckpointDir(dir.clone()).best();
            if best.is_file() {
                ctx.network.load_weights(&best)?;
            }
        } else if let Some(w) = self.best_weights.take() {
            ctx.network.set_weights(&w)?;
        }
        Ok(())
    }
}

/// One line per epoch, and a line at most every `progress_seconds` within a long epoch, when
/// `verbose` is on.
pub struct Progress {
    epoch: usize,
    last_print: Instant,
}

impl Default for Progress {
    fn default() -> Self {
        Progress {
            epoch: 0,
            last_print: Instant::now(),
        }
    }
}

impl Callback for Progress {
    fn name(&self) -> &'static str {
        "progress"
    }

    fn after_step(&mut self, ctx: &mut StepContext<'_>) -> Result<()> {
        let c = ctx.config;
        if !c.verbose || c.progress_seconds <= 0.0 {
            return Ok(());
        }
        if ctx.epoch != self.epoch {
            self.epoch = ctx.epoch;
            self.last_print = ctx.epoch_start;
        }
        if self.last_print.elapsed().as_secs_f64() >= c.progress_seconds && ctx.batch < ctx.batches
        {
            let seen = ctx.images_seen;
            progress_line(&format!(
                "  epoch {}: batch {}/{}, loss {:.4}, {:.0} images/s",
                ctx.epoch,
                ctx.batch,
                ctx.batches,
                ctx.loss_sum.double_value(&[]) / seen as f64,
                seen as f64 / ctx.epoch_start.elapsed().as_secs_f64()
            ));
            self.last_print = Instant::now();
        }
        Ok(())
    }

    fn after_epoch(&mut self, ctx: &mut EpochContext<'_>) -> Result<()> {
        if ctx.config.verbose {
            let r = ctx.record;
            progress_line(&format!(
                "epoch {:>3}/{}  train loss {:.4} acc {:.4} | val loss {:.4} acc {:.4} | lr {:.1e} | {:.1} s, {:.0} images/s",
                r.epoch,
                ctx.config.epochs,
                r.train_loss,
                r.train_accuracy,
                r.val_loss,
                r.val_accuracy,
                r.learning_rate,
                r.seconds,
                r.images_per_s
            ));
        }
        Ok(())
    }
}

/// Stops the run after `patience` epochs without a better validation loss (Keras's
/// `EarlyStopping`), saying why in the history.
pub struct EarlyStopping {
    pub patience: usize,
}

impl Callback for EarlyStopping {
    fn name(&self) -> &'static str {
        "early stopping"
    }

    fn after_epoch(&mut self, ctx: &mut EpochContext<'_>) -> Result<()> {
        let p = self.patience;
        if ctx.state.epochs_since_best >= p {
            ctx.state.stopped = true;
            ctx.history.stop_reason = format!(
                "early stopping after epoch {} ({p} epochs without a better validation loss)",
                ctx.state.epochs_done
            );
            if ctx.config.verbose {
                progress_line(&format!("  {}", ctx.history.stop_reason));
            }
        }
        Ok(())
    }
}

/// Writes the checkpoint folder after every epoch: `last.safetensors`, `best.safetensors`
/// when the epoch improved, `optimizer.safetensors`, `network.json`, `history.json` and
/// `state.json`, each atomically.
pub struct Checkpointer {
    pub dir: PathBuf,
}

impl Checkpointer {
    /// Writes the files of a checkpoint of `network` into `dir`.
    pub(crate) fn write(
        dir: &Path,
        is_best: bool,
        network: &TrainedNetwork,
        optimizer: &Optimizer,
        history: &History,
        state: &LoopState,
    ) -> Result<()> {
        let files = CheckpointDir(dir.to_path_buf());
        network.save_weights(&files.last())?;
        if is_best {
            network.save_weights(&files.best())?;
        }
        optimizer.save(&files.optimizer())?;
        network.network_file().save(dir)?;
        history.save(&files.history())?;
        write_json_atomic(&files.state(), state)
    }
}

impl Callback for Checkpointer {
    fn name(&self) -> &'static str {
        "checkpoints"
    }

    fn after_epoch(&mut self, ctx: &mut EpochContext<'_>) -> Result<()> {
        Checkpointer::write(
            &self.dir,
            ctx.improved,
            ctx.network,
            ctx.optimizer,
            ctx.history,
            ctx.state,
        )
    }
}

/// Sets the rate of every step from [`LrSchedule::rate_at`]: a linear warm-up, then half a
/// cosine down to `min_lr` by the last batch of the run.
#[derive(Debug)]
pub struct WarmupCosine(pub LrSchedule);

impl Callback for WarmupCosine {
    fn name(&self) -> &'static str {
        "warm-up + cosine"
    }

    fn before_step(&mut self, ctx: &mut StepContext<'_>) -> Result<()> {
        let per_epoch = ctx.batches.max(1);
        ctx.state.learning_rate = self.0.rate_at(
            ctx.config.learning_rate,
            ctx.state.optimizer_steps,
            per_epoch,
            (ctx.config.epochs * per_epoch) as i64,
        );
        Ok(())
    }
}

/// Keras's `ReduceLROnPlateau`: after `patience` epochs without a better validation loss, the
/// rate is multiplied by `factor`, down to `min_lr`.
#[derive(Debug)]
pub struct PlateauRule(pub ReduceLrOnPlateau);

impl Callback for PlateauRule {
    fn name(&self) -> &'static str {
        "reduce on plateau"
    }

    fn after_epoch(&mut self, ctx: &mut EpochContext<'_>) -> Result<()> {
        let r = self.0;
        let val_loss = ctx.record.val_loss;
        let s = &mut *ctx.state;
        if s.plateau_best.is_none_or(|b| val_loss < b) {
            s.plateau_best = Some(val_loss);
            s.epochs_since_lr_change = 0;
        } else {
            s.epochs_since_lr_change += 1;
            if s.epochs_since_lr_change >= r.patience && s.learning_rate > r.min_lr {
                let new_lr = (s.learning_rate * r.factor).max(r.min_lr);
                if ctx.config.verbose {
                    progress_line(&format!(
                        "  reducing the learning rate to {new_lr:.1e} (no better validation loss for {} epochs)",
                        r.patience
                    ));
                }
                s.learning_rate = new_lr;
                s.epochs_since_lr_change = 0;
            }
        }
        Ok(())
    }
}
