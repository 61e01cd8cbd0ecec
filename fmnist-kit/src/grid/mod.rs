//! Grid search with k-fold cross-validation over the 4-layer CNN's hyperparameters, scored by
//! negative log loss, as the original's `GridSearchCV` was meant to run.
//!
//! The original's grid was learning rate {1e-3, 1e-2} × optimizer {adam, sgd} × dropout
//! {0.25, 0.5} × dense size {512, 1024} with 3 folds, but its Keras wrapper silently ignored
//! the learning rate, the dropout and the dense size, so only the optimizer varied. Here every
//! point of the grid builds and trains its own network.

mod fit;
mod folds;
mod records;
mod refit;
mod report;
mod search;
mod sessions;
mod spec;

pub use fit::fit_point;
pub use folds::stratified_folds;
pub use records::{FitRecord, SearchIdentity, Shard};
pub use refit::{refit_best, refit_best_or_saved, saved_refit, RefitResult, REFIT_FILE};
pub use report::{DivergedPoint, FitScore, GridReport, GridRow};
pub use search::{grid_search, GridSearch, SearchOutcome};
pub use sessions::{SESSION_METRICS, TENSORBOARD_DIR};
pub use spec::{GridPoint, GridSettings, GridSpec};
