"""Notebook 05: grid search over the CNN's hyperparameters."""
from nbtools import FIRST_CELL, code, md

cells = [
md("""
# 05 · Grid search over the CNN's hyperparameters

The original project searched learning rate {1e-3, 1e-2} × optimizer {adam, sgd} × dropout {0.25, 0.5} ×
dense size {512, 1024}: 16 combinations, 3-fold cross-validation, scored by negative log loss
(scikit-learn's `GridSearchCV`). Its Keras wrapper silently ignored the learning rate, the dropout and the
dense size, so 12 of its 16 "combinations" were copies and only the optimizer really varied.

Here every point builds and trains its own 4-layer CNN:

1. the images and the stratified folds;
2. the search, one line per point;
3. the ranking as a table, and the average effect of each hyperparameter as a chart;
4. the best point, retrained on all the images and scored on the test set (the refit), saved with the whole
   report under `artifacts/<profile>/grid/`.

The same search runs from the command line, `fmnist grid`, which records every fit as it ends (a killed search
resumes) and splits the fits between processes or machines (`--shard K/N`); this notebook reads what it left.

Each fit trains for the profile's few epochs at a constant learning rate, without augmentation, so the
scores compare the points with one another; they are not the accuracy a full run would reach.
"""),
code(FIRST_CELL),
md("""
## Images and folds

The first images of the 80/20 training split (the profile sets how many). The folds are stratified like
scikit-learn's `StratifiedKFold`: every class is cut into equal runs, one per fold.
"""),
code("""
use fmnist_kit::{data, grid, train, viz};
let data = data::load(data::default_data_path())?;
let search = grid::GridSearch::for_profile(&profile, &data)?;
let folds = grid::stratified_folds(&search.images.labels, search.settings.folds)?;
println!("{} images, {} folds of {:?} held-out images, {} points, {} epochs per fit",
         search.images.len(), folds.len(), folds.iter().map(|f| f.1.len()).collect::<Vec<_>>(),
         search.spec.points().len(), search.settings.epochs);
"""),
md("""
## The search

Every point is trained once per fold on the other folds and scored on the held-out one. Each finished fit is
recorded at once in `artifacts/<profile>/grid/fits/`, keyed by everything that determines it (the point, the
fold, the images' hash, the seed and the sizes), so a search that was interrupted continues where it stopped,
and a search already run, by `fmnist grid` overnight or as a Slurm job array on a cluster, is read back here
instead of being run again: one line per fit trained now.
"""),
code("""
let dir = profile.grid_dir();
let outcome = search.run(Some(&dir), grid::Shard::ALL, train::best_device())?;
let report = outcome.report.clone().ok_or("the search is incomplete")?;
println!("{} fits: {} trained now, {} read back from {} in {:.0} s",
         outcome.fits_total, outcome.fits_run, outcome.fits_reused, dir.display(), outcome.seconds);
"""),
md("""
## Ranking

Mean and standard deviation of the negative log loss over the folds (higher is better), and the mean
held-out accuracy. A point whose training diverged (its loss became NaN) on some fold has no score: it is
listed last, with the reason, as scikit-learn ranks a failed fit:
"""),
code("report.to_html()"),
md("""
## What each hyperparameter does

For each value, the mean held-out log loss over the eight points that share it (lower is better). Where
the original's search could only tell the two optimizers apart, all four now move the score:
"""),
code("report.effects_chart()?", ["expect-image"]),
md("""
## The best point, refit

As scikit-learn's `GridSearchCV(refit=True)` does, the best point is trained again on all the search's images
(same epochs and settings) and scored on the test set; `fmnist evaluate --checkpoint
artifacts/<profile>/grid/refit/model.safetensors` loads it. A refit already in the folder for this best point is
read back.
"""),
code("""
let best = report.best().cloned().ok_or("every point diverged")?;
let sets = profile.sets(fmnist_kit::models::ModelKind::Cnn4, &data)?;
let (refit, read_back) =
    grid::refit_best_or_saved(&search, &report, &sets.validation, &sets.test, &dir, train::best_device())?;
println!("best: {} — neg. log loss {:.4} ± {:.4}, accuracy {:.4}; refit on {} images ({}): test accuracy {:.4}; report in {}",
         best.point, best.mean_score, best.std_score, best.mean_accuracy, refit.train_images,
         if read_back { "read back" } else { "trained now" }, refit.test_accuracy, dir.join("report.json").display());
"""),
md("""
## Check and summary
"""),
code("""
assert_eq!(report.rows.len() + report.diverged.len(), 16);
assert!(report.rows.windows(2).all(|w| w[0].mean_score >= w[1].mean_score));
assert!(report.rows.iter().all(|r| r.fold_log_loss.len() == search.settings.folds && r.mean_score.is_finite()));
assert!(dir.join("report.json").is_file() && refit.checkpoint.is_file());
assert_eq!(outcome.fits_run + outcome.fits_reused, outcome.fits_total);
println!("profile {}: 16 points x {} folds on {} images ({} fits trained now, {} read back, {:.0} s); best {} (neg. log loss {:.4}); refit test accuracy {:.4}",
         profile.name, search.settings.folds, search.images.len(), outcome.fits_run, outcome.fits_reused,
         outcome.seconds, best.point, best.mean_score, refit.test_accuracy);
"""),
md("""
**What this notebook showed.** The original's 16-point grid, searched as intended: each point trained its
own network on every fold, the ranking and the per-value averages above show how learning rate,
optimizer, dropout and dense size each change the held-out log loss, and the best point is printed and
saved with the report. The fits are short (the profile's epochs), so the ranking says which settings
learn fastest from the start; notebook 02 trains the chosen network to convergence.

Averages can mislead. In the quick profile (3 folds of 12,000 images, 2 epochs, measured on a 2-core CPU
in 5.5 minutes) a learning rate of 1e-2 scored better *on average*, only because plain SGD barely moves
at 1e-3; the best point was Adam at 1e-3 with dropout 0.5 and dense 512 (held-out log loss 0.408,
accuracy 0.849), the original's own choice. Dropout and dense size moved the score far less than the
optimizer and the learning rate. The full profile's grid (3 folds of 48,000 images, 10 epochs; 3 h 6 min of
fits on the same CPU, run with `fmnist grid --profile full`) chose the same point: held-out log loss 0.277,
accuracy 0.913, and 0.9076 on the test set after its refit.

Next: evaluation (**06**) and feature maps (**07**).
"""),
]
