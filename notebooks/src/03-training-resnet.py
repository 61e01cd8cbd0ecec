"""Notebook 03: training the ResNet."""
from nbtools import FIRST_CELL, code, md

cells = [
md("""
# 03 · Training the ResNet

The original's second model is a ResNet-18 laid out for 28×28 images: a 7×7 stride-2 convolution, then four
stages of two basic blocks (64, 128, 256, 512 filters; each block two 3×3 convolutions with batch
normalisation and a shortcut, projected by a 1×1 convolution where the stage halves the resolution), global
average pooling and a 10-way output; L2 1e-4 on every kernel, He-normal initialisation. 11.2 million
parameters, 17 times the CNN's. It reported **0.9099** after 10 epochs at batch 32.

Here: its augmentation (flip, width and height shifts 0.1, random erasing), its summary, training with
progress lines and curves, the test accuracy and the checkpoint for notebooks 06 and 07.
"""),
code(FIRST_CELL),
md("""
## Data

The same 80/20 split as notebook 02. A ResNet step costs far more than a CNN step on a CPU, so the `quick`
profile trains on a subset of the training split (the `full` profile uses all of it).
"""),
code("""
use fmnist_kit::{augment, data, models::ModelKind, run::{RunOptions, TrainingRun}, viz};
let data = data::load(data::default_data_path())?;
let sets = profile.sets(ModelKind::ResNet, &data)?;
println!("train {} / validation {} / test {} images", sets.train.len(), sets.validation.len(), sets.test.len());
"""),
md("""
## Its augmentation

The original's ResNet pipeline: horizontal flips, shifts of up to 10 % in each direction (edges repeated),
random erasing. Five draws of the pipeline on the same eight images:
"""),
code("""
let examples = data.train.examples_per_class(1)?.first(8);
let mut rows = vec![("original".to_string(), augment::AugmentConfig::default())];
rows.extend((1..=5).map(|i| (format!("draw {i}"), augment::AugmentConfig::original_resnet())));
viz::augmentation_rows(&examples, &rows, 3)?
""", ["expect-image"]),
md("""
## The network

Stem, four stages of two blocks, pooling and the output layer, with Keras's parameter counting:
**11,178,378** trainable parameters, exactly the original's.
"""),
code("""
let mut run = TrainingRun::prepare(ModelKind::ResNet, &profile, &data, RunOptions::default())?;
println!("{}", run.describe());
println!("{}", run.trainer.network().summary()?);
"""),
md("""
## Training

The original ran Adam at 1e-3 (again what it really ran, whatever it built), the learning rate ×0.1 after
5 flat epochs, L2 1e-4 on every kernel. The profile's tuned recipe (notebook 02) trains the same network
with a warm-up and cosine decay, decoupled weight decay instead of the L2 penalty, and the same
augmentation. Measured on a 2-core CPU in the quick profile (4 epochs on 24,000 images): 0.8434 test
accuracy with the original recipe, 0.8857 with the tuned one. The ResNet keeps the default memory
layout, which measured faster for it than channels-last.
"""),
code("""
println!("recipe {}\\n{}", profile.recipe, run.trainer.config);
"""),
md("""
A progress line appears every 20 seconds inside long epochs, and one line closes each epoch:
"""),
code("""
let result = run.fit()?;
println!("{} after {:.0} s", result.stop_reason, result.train_seconds);
"""),
code("viz::training_curves(&run.trainer.history)?", ["expect-image"]),
md("""
## Test accuracy
"""),
code("""
println!("test accuracy {:.4} (loss {:.4}) on {} images; the original reported 0.9099",
         result.test_accuracy, result.test_loss, result.test_images);
println!("saved in {}", run.checkpoints.result().display());
"""),
md("""
## Check and summary
"""),
code("""
assert_eq!(run.trainer.network().summary()?.trainable_params, 11_178_378);
assert!(run.checkpoints.best().is_file() && run.checkpoints.result().is_file());
let last = run.trainer.history.epochs.last().map_or(0.0, |e| e.train_accuracy);
assert!(last > 0.2, "training accuracy {last} is no better than chance (0.1)");
println!("profile {}: ResNet trained {} epochs on {} images in {:.0} s ({:.0} images/s); test accuracy {:.4}",
         profile.name, result.epochs_run, result.train_images, result.train_seconds,
         run.trainer.history.mean_images_per_s(), result.test_accuracy);
"""),
md("""
**What this notebook showed.** The original's ResNet, parameter for parameter, trained with its
augmentation; the curves show how far the profile's epochs took it, and the printed line gives the measured
time, throughput and test accuracy (saved in `artifacts/<profile>/resnet/result.json`). On a CPU the
`quick` profile trains a subset for a few epochs; the `full` profile (a GPU is recommended) runs the
original's 10 epochs on all 48,000 images.

Next: evaluation (**06**) and feature maps (**07**) of the models trained here and in notebook 02.
"""),
]
