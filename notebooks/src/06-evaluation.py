"""Notebook 06: evaluation beyond test accuracy."""
from nbtools import FIRST_CELL, code, md

cells = [
md("""
# 06 · Evaluation: beyond test accuracy

"Test accuracy is not sufficient," the original project said, and showed per-class precision, recall and F1,
a confusion matrix and galleries of right and wrong answers. This notebook does all of that for the models
that notebooks 02, 03 and 04 trained, with scikit-learn's exact numbers, plus what
the original lacked: a map of what the network learned, its penultimate-layer features embedded with t-SNE
beside the raw pixels of the same images.
"""),
code(FIRST_CELL),
md("""
## The trained models

Each notebook saved its best weights under `artifacts/<profile>/<model>/`, with `network.json` saying how to
build the network again (the transfer networks' image size, for one). Every network of the kit's table is
looked for; one whose checkpoint is missing (InceptionV3 without its ImageNet weights, say) is reported in a
sentence and left out.
"""),
code("""
use fmnist_kit::{data, metrics, models::ModelKind, train::{self, TrainedNetwork}, tsne, viz};
let data = data::load(data::default_data_path())?;
let test_set = profile.test_set(&data);
let device = train::best_device();
let mut trained: Vec<(ModelKind, TrainedNetwork, metrics::Predictions)> = Vec::new();
for kind in ModelKind::all() {
    let ckpt = profile.checkpoint_dir(kind).best();
    if !ckpt.is_file() {
        let notebook = if kind.spec().backbone.is_some() { "04 (transfer learning)" } else { "02 or 03" };
        println!("no {kind} checkpoint at {}: notebook {notebook} has not trained it", ckpt.display());
        continue;
    }
    let model = TrainedNetwork::load(kind, &ckpt, device)?;
    let preds = model.predict(&test_set)?;
    println!("{kind}: test accuracy {:.4}, log loss {:.4} on {} images", preds.accuracy()?, preds.log_loss()?, test_set.len());
    trained.push((kind, model, preds));
}

"""),
md("""
## Classification report

Per class: **precision** (of the images predicted as this class, the share that are), **recall** (of the
images of this class, the share found), their harmonic mean **F1**, and the **support** (images of the class).
The numbers are scikit-learn's `classification_report` to the last digit (the kit's tests compare them
with fixtures scikit-learn produced). First as scikit-learn prints it, for every model:
"""),
code("""
for (kind, _, preds) in &trained {
    println!("{kind}\\n{}", preds.report()?.to_text());
};
"""),
md("""
The first model's report as a table:
"""),
code("""
let (best_kind, best) = trained.first().map(|t| (t.0, t.2.clone())).ok_or("no trained model: run notebooks 02 and 03 first")?;
best.report()?.to_html()
"""),
md("""
## Confusion matrix

Rows are the true classes, columns the predictions; each cell shows its count and its share of the row, and
its colour follows the share. The diagonal is what the model gets right; the bright off-diagonal cells are
the garments it mixes up.
"""),
code("""
viz::confusion_heatmap(&best.confusion_matrix()?, &format!("{best_kind}: confusion matrix on {} test images", test_set.len()))?
""", ["expect-image"]),
md("""
The most confused pairs, largest first:
"""),
code("metrics::confused_pairs_html(&metrics::most_confused(&best.confusion_matrix()?, 8))"),
md("""
## Right and wrong answers

The first nine misclassified test images, each with the prediction and the truth. Many are hard even for a
person at 28×28: a shirt with short sleeves, a pullover seen flat.
"""),
code("""
viz::prediction_gallery(&test_set, &best.misclassified(9), &best.predicted, 3, &format!("{best_kind}: misclassified"))?
""", ["expect-image"]),
code("""
viz::prediction_gallery(&test_set, &best.correct(9), &best.predicted, 3, &format!("{best_kind}: correctly classified"))?
""", ["expect-image"]),
md("""
## What the network learned

The same test images embedded twice with the kit's t-SNE: from their raw pixels, and from the network's
penultimate layer (the features its classifier reads). The 10-NN accuracy of each map measures how well
classes separate: the learned features should separate far better than pixels do.
"""),
code("""
let sample = test_set.first(profile.tsne_points.min(test_set.len()));
let config = tsne::TsneConfig { epochs: profile.tsne_epochs, ..Default::default() };
let raw = tsne::tsne_images(&sample, &config)?;
let learned = tsne::tsne_features(&trained[0].1.features(&sample)?, &sample.labels, &config)?;
println!("{} test images: raw pixels 10-NN accuracy {:.3}, {best_kind} features {:.3}",
         sample.len(), raw.knn10_accuracy, learned.knn10_accuracy);
"""),
code("""
viz::Figure::hstack(&[
    viz::ClassScatter::new(format!("raw pixels (10-NN {:.3})", raw.knn10_accuracy), raw.coords.clone(), raw.labels.clone()).draw()?,
    viz::ClassScatter::new(format!("{best_kind} features (10-NN {:.3})", learned.knn10_accuracy), learned.coords.clone(), learned.labels.clone()).draw()?,
])
""", ["expect-image"]),
md("""
## Check and summary
"""),
code("""
assert!(!trained.is_empty());
for (_, _, p) in &trained {
    let r = p.report()?;
    assert_eq!(r.macro_avg.support as usize, test_set.len());
    assert!((r.accuracy - p.accuracy()?).abs() < 1e-12);
}
assert_eq!(learned.coords.len(), sample.len());
let line: Vec<String> = trained.iter().map(|(k, _, p)| format!("{k} {:.4}", p.accuracy().unwrap_or(0.0))).collect();
println!("profile {}: test accuracy {}; t-SNE 10-NN raw {:.3} vs learned {:.3}",
         profile.name, line.join(", "), raw.knn10_accuracy, learned.knn10_accuracy);
"""),
md("""
**What this notebook showed.** For each trained model: scikit-learn's classification report, the confusion
matrix with counts and shares, the most confused pairs, galleries of wrong and right answers, and a t-SNE of
its learned features beside the raw pixels, with the measured 10-NN accuracy of each printed above.

Next: **07 · Feature maps**, what each layer computes for a given image.
"""),
]
