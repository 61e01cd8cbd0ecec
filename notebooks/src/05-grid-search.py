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
4. the best point, saved with the whole report under `artifacts/<profile>/grid/`.

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
let images = profile.grid_images(&data)?;
let settings = grid::GridSettings::from_profile(&profile);
let spec = grid::GridSpec::default();
let folds = grid::stratified_folds(&images.labels, settings.folds)?;
println!("{} images, {} folds of {:?} held-out images, {} points, {} epochs per fit",
         images.len(), folds.len(), folds.iter().map(|f| f.1.len()).collect::<Vec<_>>(),
         spec.points().len(), settings.epochs);
"""),
md("""
## The search

Every point is trained once per fold on the other folds and scored on the held-out one:
"""),
code("""
let started = std::time::Instant::now();
let report = grid::grid_search(&spec, &settings, &images, train::best_device())?;
let seconds = started.elapsed().as_secs_f64();
println!("{} fits in {seconds:.0} s", report.rows.len() * settings.folds);
"""),
md("""
## Ranking

Mean and standard deviation of the negative log loss over the folds (higher is better), and the mean
held-out accuracy:
"""),
code("report.to_html()"),
md("""
## What each hyperparameter does

For each value, the mean held-out log loss over the eight points that share it (lower is better). Where
the original's search could only tell the two optimizers apart, all four now move the score:
"""),
code("report.effects_chart()?", ["expect-image"]),
md("""
## The best point
"""),
code("""
let best = report.best().cloned().ok_or("empty grid")?;
let dir = profile.grid_dir();
report.save(&dir)?;
println!("best: {} — neg. log loss {:.4} ± {:.4}, accuracy {:.4}; report in {}",
         best.point, best.mean_score, best.std_score, best.mean_accuracy, dir.join("report.json").display());
"""),
md("""
## Check and summary
"""),
code("""
assert_eq!(report.rows.len(), 16);
assert!(report.rows.windows(2).all(|w| w[0].mean_score >= w[1].mean_score));
assert!(report.rows.iter().all(|r| r.fold_log_loss.len() == settings.folds && r.mean_score.is_finite()));
assert!(dir.join("report.json").is_file());
println!("profile {}: 16 points x {} folds on {} images in {:.0} s; best {} (neg. log loss {:.4})",
         profile.name, settings.folds, images.len(), seconds, best.point, best.mean_score);
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
optimizer and the learning rate.

Next: evaluation (**06**) and feature maps (**07**).
"""),
]
