"""Notebook 07: feature maps and Grad-CAM."""
from nbtools import FIRST_CELL, code, md

cells = [
md("""
# 07 · Feature maps and Grad-CAM

What does each layer compute? The original project extracted the activations of its CNN's convolution and
pooling layers for one training image (number 2018) and tiled them 16 channels per row. This notebook does
the same for every convolution, activation, batch-norm and pooling layer, for the CNN and the ResNet, then
asks a different question with **Grad-CAM**: which pixels made the network choose its answer, for right and
for wrong predictions.

Each channel is standardised, scaled by 64 around mid-grey and clipped, as the original did, except that a
channel that is constant (a ReLU that never fired) shows mid-grey instead of the original's NaN.
"""),
code(FIRST_CELL),
code("""
use fmnist_kit::{data, features, models::ModelKind, train::{self, TrainedNetwork}, viz};
let data = data::load(data::default_data_path())?;
let test_set = profile.test_set(&data);
let device = train::best_device();
let cnn_path = profile.checkpoint_dir(ModelKind::Cnn4).best();
let resnet_path = profile.checkpoint_dir(ModelKind::ResNet).best();
let cnn = TrainedNetwork::load(ModelKind::Cnn4, &cnn_path, device)
    .map_err(|e| format!("the CNN checkpoint is missing or unreadable ({e}): run notebook 02 first"))?;
let cam_layer = ModelKind::Cnn4.spec().grad_cam_layer;
let resnet = if resnet_path.is_file() {
    Some(TrainedNetwork::load(ModelKind::ResNet, &resnet_path, device)?)
} else {
    println!("no ResNet checkpoint at {}: its maps are skipped (run notebook 03)", resnet_path.display());
    None
};
let image = 2018;
println!("training image {image}: a {}", data::class_name(data.train.labels[image] as usize));
"""),
code("viz::image_grid(&[viz::ImageTile::from_u8(data.train.image(image).ok_or(\"no image 2018\")?, data::class_name(data.train.labels[image] as usize))?], &viz::ImageGridConfig { columns: 1, scale: 6, ..Default::default() })?", ["expect-image"]),
md("""
## The CNN, layer by layer

Sixteen layers: for each of the four blocks, the convolution, its ReLU, the batch normalisation and the 2×2
max pooling. The first block still looks like the garment (edges, its outline, its inside); each pooling
halves the resolution, and by the fourth block the 256 channels of 3×3 and 1×1 are abstract features that the
dense layers read.
"""),
code("""
let layers = features::layer_activations(cnn.model(), &data.train, image, device)?;
for (name, t) in &layers { println!("{name:<6} {:?}", t.size()); };
"""),
code("features::layers_figure(&layers[0..4])?", ["expect-image"]),
code("features::layers_figure(&layers[4..8])?", ["expect-image"]),
code("features::layers_figure(&layers[8..16])?", ["expect-image"]),
md("""
## A few test images, pooled layers only

The outputs of the four pooling layers for three test images of different classes: the first blocks differ
visibly with the garment; the last ones are what separates the classes.
"""),
code("""
let picks: Vec<usize> = [0u8, 5, 8].iter().map(|&c| test_set.indices_of_class(c, 1)[0]).collect();
let pooled: Vec<viz::Figure> = picks.iter()
    .map(|&i| features::layers_figure(&features::only(&features::layer_activations(cnn.model(), &test_set, i, device)?, "pool")))
    .collect::<Result<_, _>>()?;
viz::Figure::hstack(&pooled)
""", ["expect-image"]),
md("""
## The ResNet's stages

The ResNet has no separate pooling layers: its stem halves the image with a stride-2 convolution and each
later stage halves it again. Its stem and the output of each stage, for the same training image:
"""),
code("""
match &resnet {
    Some(r) => {
        let acts = features::layer_activations(r.model(), &data.train, image, device)?;
        let picked: Vec<_> = acts.into_iter().filter(|(n, _)| n == "stem_act" || n.ends_with("block2")).collect();
        features::layers_figure(&picked)?
    }
    None => viz::message("No ResNet checkpoint for this profile: run notebook 03 to see its stages.")?,
}
""", ["expect-image"]),
md("""
## Grad-CAM: where the network looks

Grad-CAM weights each channel of the last convolutional block by the gradient of the chosen class's score,
sums them and keeps the positive part: bright areas raised the score. Red to yellow over the image, for the
first three test images the CNN gets right, then the first three it gets wrong:
"""),
code("""
let preds = cnn.predict(&test_set)?;
viz::Figure::vstack(&[
    features::grad_cam_row(cnn.model(), &test_set, &preds.correct(3), cam_layer, device)?,
    features::grad_cam_row(cnn.model(), &test_set, &preds.misclassified(3), cam_layer, device)?,
])
""", ["expect-image"]),
md("""
## Check and summary
"""),
code("""
assert_eq!(layers.len(), 16);
assert!(layers.iter().all(|(_, t)| t.isnan().any().int64_value(&[]) == 0));
let cam = features::grad_cam(cnn.model(), &test_set, preds.misclassified(1).first().copied().unwrap_or(0), None, cam_layer, device)?;
assert!(cam.heat.iter().all(|v| v.is_finite()));
println!("profile {}: {} CNN layers drawn for training image {image}{}; Grad-CAM at {} for right and wrong test images",
         profile.name, layers.len(), if resnet.is_some() { " and the ResNet's stages" } else { "" }, cam.layer);
"""),
md("""
**What this notebook showed.** Every convolution, activation, batch-norm and pooling layer of the CNN for the
original's training image 2018, tiled 16 channels per row as the original did (without its NaN on flat
channels), pooled layers for three test images, the ResNet's stem and stages, and Grad-CAM maps of what made
the CNN choose its answer when right and when wrong.
"""),
]
