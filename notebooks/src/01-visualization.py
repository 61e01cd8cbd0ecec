"""Notebook 01: visualizing Fashion-MNIST (samples, class balance, class means, t-SNE of raw pixels)."""
from nbtools import FIRST_CELL, code, md

cells = [
md("""
# 01 · Visualizing Fashion-MNIST

Fashion-MNIST (Zalando Research) holds 70,000 grayscale 28×28 pictures of clothing in 10 classes:
60,000 for training and 10,000 for testing. It was made as a harder drop-in replacement for MNIST's
digits: a shirt and a T-shirt are far easier to confuse than a 1 and a 7.

This notebook looks at the data before any model does:

1. load it through the kit (`fmnist_kit::data`), from the same `data.tar.gz` the original Keras
   project read, built reproducibly from the official files;
2. ten examples of every class;
3. how balanced the classes are in the training and test sets;
4. the mean image of each class: what an "average" sandal looks like;
5. a t-SNE map of the raw pixels, scored by how often a point's 10 nearest neighbours share its class.

The first cell loads the kit and prints the **profile** (`FMNIST_PROFILE`: `smoke`, `quick` or `full`)
that sets every size in the walkthrough. The first run compiles libtorch bindings (a few minutes);
later runs reuse the build.
"""),
code(FIRST_CELL),
md("""
## Loading the data

`data::load` streams the tarball (gzip → tar → CSV) into memory without extracting anything, checks
every row (a bad file is reported with its member, line and field) and caches the parsed images keyed
by the file's content, so every notebook after the first loads in a few hundredths of a second.
Images are `u8` of shape `[N, 28, 28]`; tensors (`[N, 1, 28, 28]`, floats in 0..1) are made on demand.
"""),
code("""
use fmnist_kit::data::{self, CLASS_NAMES};
let data = data::load(data::default_data_path())?;
println!("{} training and {} test images from {}", data.train.len(), data.test.len(), data.info.source.display());
println!("loaded in {:.3} s ({})", data.info.load_seconds, if data.info.cached { "from the cache" } else { "parsed, cache written" });
let (mean, std) = data.train.pixel_mean_std();
println!("training pixels: mean {mean:.4}, std {std:.4} (0..1 scale)");
"""),
md("""
## Ten examples of every class

One row per class, in the order the images appear in the training set. Dark pixels are the garment
(drawn as the original did, with matplotlib's `binary` map). Notice how close *shirt*, *T-shirt*,
*pullover* and *coat* look at this resolution: they are where models will make most of their mistakes.
"""),
code("""
fmnist_kit::viz::class_samples_grid(&data.train, profile.samples_per_class)?
""", ['expect-image']),
md("""
## Class balance

Every class has exactly 6,000 training and 1,000 test images, so accuracy is a fair summary here and no
class weighting is needed. The validation split used for training (80/20, seed 13 as in the original)
keeps roughly that balance; `SplitConfig { stratified: true, .. }` makes it exact.
"""),
code("""
fmnist_kit::viz::class_balance(&data.train, &data.test)?
""", ['expect-image']),
code("""
let split = data::train_validation_split(&data.train, &data::SplitConfig::default())?;
let counts = split.validation.class_counts();
println!("80/20 split: {} train / {} validation images", split.train.len(), split.validation.len());
let per_class: Vec<String> = CLASS_NAMES.iter().zip(counts).map(|(name, c)| format!("{name} {c}")).collect();
println!("validation images per class: {}", per_class.join(", "));
"""),
md("""
## The mean image of each class

Averaging all 6,000 training images of a class shows its typical silhouette. Trousers and bags are
sharply defined; shirts, pullovers and coats blur into the same shape, sandals into a faint lattice.
"""),
code("""
fmnist_kit::viz::class_mean_grid(&data.train)?
""", ['expect-image']),
md("""
## t-SNE of the raw pixels

t-SNE places similar images near each other on a plane. The kit reduces the 784 pixels to 50 principal
components, finds each image's exact nearest neighbours with libtorch, and runs the `bhtsne` crate's
Barnes-Hut t-SNE (FFT-accelerated FIt-SNE, openTSNE's algorithm, from 20,000 points on) from a PCA
initialisation. The original project ran scikit-learn's t-SNE on the first 5,000 training images in 162 s.

To judge the map by a number rather than by eye, the kit reports its **10-NN accuracy**: how often the
majority class of a point's 10 nearest neighbours on the plane is its own class (leave-one-out).
"""),
code("""
use fmnist_kit::tsne::{self, TsneConfig};
let sample = data.train.first(profile.tsne_points);
let config = TsneConfig { epochs: profile.tsne_epochs, ..TsneConfig::default() };
let embedding = tsne::tsne_images(&sample, &config)?;
println!("t-SNE of the first {} training images: {:.1} s, 10-NN accuracy {:.3}",
         sample.len(), embedding.seconds, embedding.knn10_accuracy);
"""),
code("""
fmnist_kit::viz::ClassScatter::new(
    format!("t-SNE of {} raw training images (10-NN accuracy {:.3})", sample.len(), embedding.knn10_accuracy),
    embedding.coords.clone(),
    embedding.labels.clone(),
).draw()?
""", ['expect-image']),
md("""
Footwear (sandal, sneaker, ankle boot) and trousers form their own islands; bags spread out; the upper-body
garments (T-shirt, shirt, pullover, coat, dress) overlap. Raw pixels already separate much of the data,
but not the classes that matter most: the networks of the next notebooks must learn features that do.
"""),
md("""
## Check and summary

The last cell uses every key variable of this notebook (a cell that failed earlier would leave one
undefined, and this cell would then fail to compile) and checks what the figures claimed.
"""),
code("""
assert_eq!((data.train.len(), data.test.len()), (60_000, 10_000));
assert!(data.train.class_counts().iter().all(|&c| c == 6_000));
assert!(data.test.class_counts().iter().all(|&c| c == 1_000));
assert_eq!(split.train.len() + split.validation.len(), 60_000);
assert_eq!(embedding.coords.len(), sample.len());
assert!(embedding.knn10_accuracy > 0.5, "t-SNE map no better than chance");
println!("profile {}: {} images loaded in {:.3} s; t-SNE of {} points in {:.1} s, 10-NN accuracy {:.3}",
         profile.name, data.train.len() + data.test.len(), data.info.load_seconds,
         sample.len(), embedding.seconds, embedding.knn10_accuracy);
"""),
md("""
**What this notebook showed.** The 70,000 images load in well under a second (a few hundredths once
cached); the ten classes are perfectly balanced (6,000 / 1,000 images each); class means already show
which garments share a silhouette; and a t-SNE of raw pixels, computed in seconds rather than the
original's 162 s, separates footwear, trousers and bags but mixes the upper-body garments. The printed
line above gives the measured times and 10-NN accuracy of this run.

Next: **02 · Training the 4-layer CNN**.
"""),
]
