//! What a trainer reports of its run: its scores to the sinks, and its figures for
//! `result.json`.

use super::Trainer;
use crate::error::Result;
use crate::train::checkpoint::RunResult;
use crate::train::network::Evaluation;

impl Trainer {
    /// Gives the sinks the network's scores on `split` (e.g. "test", with its confusion
    /// matrix), at the step after the run's last one (so that scoring a finished run again in
    /// a later sitting replaces them instead of adding a second point: that sitting's restart
    /// marker is at this step).
    pub fn record_evaluation(&mut self, split: &str, evaluation: &Evaluation) -> Result<()> {
        let step = self.state.optimizer_steps + 1;
        self.sinks
            .iter_mut()
            .try_for_each(|s| s.record_evaluation(step, split, evaluation))
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
            trainable_params: Some(crate::models::ParameterCounts::of(self.var_store()).trainable),
            train_images,
            epochs_run: self.history.epochs.len(),
            stop_reason: match self.interrupted_after {
                Some(_) => "interrupted".into(),
                None => self.history.stop_reason.clone(),
            },
            train_seconds,
            best_val_accuracy: self.history.best().map(|b| b.val_accuracy),
            test_accuracy: test.accuracy,
            test_loss: test.loss,
            test_images: test.images,
            settings: self.config.to_string(),
            interrupted_after: self.interrupted_after,
        }
    }
}
