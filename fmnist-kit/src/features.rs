//! What each layer computes: feature maps of every convolution, batch-norm, activation and
//! pooling layer for one image, tiled as the original project did, and Grad-CAM.
//!
//! Tiling (the original's recipe): each channel is standardised (minus its mean, divided by its
//! standard deviation), scaled by 64, shifted by 128 and clipped to 0..255; 16 channels per row.
//! A constant channel (standard deviation 0), which gave NaN in the original, renders mid-grey.
//! A 1×1 layer (one value per channel: the pooled vector the dense layers read) is drawn as
//! bars, one per channel, since a tile of one pixel per channel cannot be read.

use tch::{Device, Kind, Tensor};

use crate::data::{ImageSet, IMAGE_SIDE};
use crate::error::{Error, Result};
use crate::models::Classifier;
use crate::viz::{image_grid, Figure, ImageGridConfig, ImageTile};

/// Channels per row of a feature-map grid, as in the original.
pub const CHANNELS_PER_ROW: usize = 16;

/// The feature maps among a network's activations (as [`TrainedNetwork::activations`] gives
/// them): the 4-D outputs `[1, C, H, W]` of every convolution, batch-norm, activation, pooling
/// layer or block, in order.
///
/// [`TrainedNetwork::activations`]: crate::train::TrainedNetwork::activations
pub fn feature_maps(activations: Vec<(String, Tensor)>) -> Vec<(String, Tensor)> {
    activations
        .into_iter()
        .filter(|(_, t)| t.dim() == 4)
        .collect()
}

/// Channel `c` of an activation `[1, C, H, W]` as grey levels in 0..1 by the original's recipe
/// (standardise, ×64 + 128, clip to 0..255), mid-grey for a constant channel. Never NaN.
pub fn channel_pixels(activation: &Tensor, c: i64) -> Result<Vec<f32>> {
    let ch = activation.f_get(0)?.f_get(c)?.to_kind(Kind::Double);
    let mean = ch.mean(Kind::Double).double_value(&[]);
    let std = ch.std(false).double_value(&[]);
    let scaled = if std > 1e-12 && std.is_finite() {
        ((&ch - mean) / std * 64.0 + 128.0).clamp(0.0, 255.0) / 255.0
    } else {
        ch.full_like(128.0 / 255.0)
    };
    Ok(Vec::<f32>::try_from(
        scaled.to_kind(Kind::Float).flatten(0, -1),
    )?)
}

/// All channels of one layer's activation `[1, C, H, W]`, 16 per row, titled with the layer
/// name; a 1×1 layer (one value per channel) as a bar chart of its `C` values instead.
pub fn feature_map_grid(name: &str, activation: &Tensor) -> Result<Figure> {
    let size = activation.size();
    let [1, c, h, w] = size[..] else {
        return Err(Error::param(
            "activation",
            format!("expected [1, C, H, W], got {size:?}"),
        ));
    };
    if h * w == 1 {
        let values = Vec::<f64>::try_from(activation.to_kind(Kind::Double).flatten(0, -1))?;
        let every = (c as usize / 8).max(1);
        return crate::viz::BarChart {
            title: format!("{name}: {c} channels of 1×1, one bar per channel"),
            categories: (0..c as usize)
                .map(|k| {
                    if k % every == 0 {
                        k.to_string()
                    } else {
                        String::new()
                    }
                })
                .collect(),
            series: vec![(name.to_string(), values)],
            y_label: "value".into(),
            show_values: false,
            width: 16 * 56,
            height: 220,
            ..Default::default()
        }
        .draw();
    }
    let tiles = (0..c)
        .map(|k| ImageTile::from_f32(channel_pixels(activation, k)?, w as usize, h as usize, ""))
        .collect::<Result<Vec<_>>>()?;
    // Small maps are drawn larger, so that every grid is about the same width.
    let scale = ((56 / w.max(1)) as u32).clamp(1, 28);
    image_grid(
        &tiles,
        &ImageGridConfig {
            columns: CHANNELS_PER_ROW,
            scale,
            title: Some(format!("{name}: {c} channels of {h}×{w}")),
            row_labels: Vec::new(),
            inverted: false,
        },
    )
}

/// The layers among `layers` whose name starts with `prefix` (e.g. `"pool"`), in order.
pub fn only(layers: &[(String, Tensor)], prefix: &str) -> Vec<(String, Tensor)> {
    layers
        .iter()
        .filter(|(n, _)| n.starts_with(prefix))
        .map(|(n, t)| (n.clone(), t.shallow_clone()))
        .collect()
}

/// The feature-map grids of `layers`, one above the other, in one figure (one rich output).
pub fn layers_figure(layers: &[(String, Tensor)]) -> Result<Figure> {
    if layers.is_empty() {
        return Err(Error::param("layers", "no layer to draw"));
    }
    let grids = layers
        .iter()
        .map(|(n, t)| feature_map_grid(n, t))
        .collect::<Result<Vec<_>>>()?;
    Ok(Figure::vstack(&grids))
}

/// Grad-CAM overlays of the images of `set` at `indices`, side by side, each titled with its
/// prediction, confidence and true class.
pub fn grad_cam_row(
    model: &dyn Classifier,
    set: &ImageSet,
    indices: &[usize],
    layer_prefix: &str,
    device: Device,
) -> Result<Figure> {
    if indices.is_empty() {
        return Err(Error::param("indices", "no image to explain"));
    }
    let figures = indices
        .iter()
        .map(|&i| {
            let cam = grad_cam(model, set, i, None, layer_prefix, device)?;
            let title = format!(
                "pred {} {:.0}% / true {}",
                crate::data::class_name(cam.class),
                cam.probability * 100.0,
                crate::data::class_name(set.labels[i] as usize)
            );
            grad_cam_overlay(set, i, &cam, 5, &title)
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(Figure::hstack(&figures))
}

/// A Grad-CAM map: where the network looked when scoring `class` for one image.
#[derive(Clone, Debug, PartialEq)]
pub struct GradCam {
    /// The layer whose activations and gradients were used.
    pub layer: String,
    /// The class explained.
    pub class: usize,
    /// The class's probability for this image.
    pub probability: f64,
    /// Importance in 0..1, upsampled to 28×28, row-major.
    pub heat: Vec<f32>,
}

/// Grad-CAM (Selvaraju et al. 2017) for image `index` of `set` and `class` (default: the
/// predicted class) at the last 4-D layer named with `layer_prefix` (e.g. `"act4"` or `"stage4"`).
pub fn grad_cam(
    model: &dyn Classifier,
    set: &ImageSet,
    index: usize,
    class: Option<usize>,
    layer_prefix: &str,
    device: Device,
) -> Result<GradCam> {
    let one = set.select(&[index])?;
    let x = one.images_tensor().to_device(device);
    let acts = model.activations(&x, false);
    let (layer, a) = acts
        .iter()
        .filter(|(n, t)| n.starts_with(layer_prefix) && t.dim() == 4)
        .last()
        .ok_or_else(|| {
            Error::param(
                "layer_prefix",
                format!("no 4-D layer named {layer_prefix}…"),
            )
        })?;
    let logits = &acts
        .last()
        .ok_or_else(|| Error::param("model", "no output"))?
        .1;
    let probs = logits.softmax(-1, Kind::Float);
    let class = match class {
        Some(c) if c < 10 => c,
        Some(c) => return Err(Error::param("class", format!("{c} is outside 0..=9"))),
        None => logits.argmax(-1, false).int64_value(&[0]) as usize,
    };
    let score = logits.f_get(0)?.f_get(class as i64)?;
    let grads = Tensor::f_run_backward(&[&score], &[a], false, false)?;
    let g = grads
        .first()
        .ok_or_else(|| Error::param("model", "no gradient"))?;
    let weights = g.mean_dim(&[2i64, 3][..], true, Kind::Float);
    let cam = (weights * a.detach())
        .sum_dim_intlist(1i64, true, Kind::Float)
        .relu();
    let cam =
        cam.f_upsample_bilinear2d([IMAGE_SIDE as i64, IMAGE_SIDE as i64], false, None, None)?;
    let max = cam.max().double_value(&[]);
    let cam = if max > 0.0 { cam / max } else { cam };
    Ok(GradCam {
        layer: layer.clone(),
        class,
        probability: probs.double_value(&[0, class as i64]),
        heat: Vec::<f32>::try_from(cam.to_device(Device::Cpu).flatten(0, -1))?,
    })
}

/// The image in grey with the Grad-CAM heat laid over it in red–yellow, scaled `scale` times.
pub fn grad_cam_overlay(
    set: &ImageSet,
    index: usize,
    cam: &GradCam,
    scale: u32,
    title: &str,
) -> Result<Figure> {
    let px = set.image(index).ok_or_else(|| {
        Error::param(
            "index",
            format!("{index} is past the end ({} images)", set.len()),
        )
    })?;
    let side = IMAGE_SIDE as u32 * scale;
    let body = {
        let mut f = Figure::blank(side, side);
        for y in 0..side {
            for x in 0..side {
                let k = (y / scale) as usize * IMAGE_SIDE + (x / scale) as usize;
                let grey = 1.0 - px[k] as f32 / 255.0; // dark garment on white, as the galleries
                let h = cam.heat.get(k).copied().unwrap_or(0.0).clamp(0.0, 1.0);
                let alpha = 0.6 * h;
                let heat = [1.0, h, 0.0]; // red → yellow
                let i = ((y * side + x) * 3) as usize;
                for ch in 0..3 {
                    f.rgb[i + ch] =
                        (((1.0 - alpha) * grey + alpha * heat[ch]) * 255.0).round() as u8;
                }
            }
        }
        f
    };
    // Title band drawn by the grid renderer: reuse it with one tile, then paste the overlay.
    let titled = image_grid(
        &[ImageTile::from_f32(
            vec![0.0; IMAGE_SIDE * IMAGE_SIDE],
            IMAGE_SIDE,
            IMAGE_SIDE,
            title,
        )?],
        &ImageGridConfig {
            columns: 1,
            scale,
            title: None,
            row_labels: Vec::new(),
            inverted: true,
        },
    )?;
    let mut out = titled;
    let x0 = (out.width - side) / 2;
    let y0 = out.height - side - 6;
    out.paste_at(&body, x0, y0);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::models::{Cnn4, Cnn4Config};
    use tch::nn;

    fn one_image() -> ImageSet {
        ImageSet {
            images: (0..784).map(|i| (i % 251) as u8).collect(),
            labels: vec![3],
        }
    }

    #[test]
    fn channels_are_standardised_and_flat_ones_are_grey_not_nan() {
        let a = Tensor::zeros([1, 2, 4, 4], (Kind::Float, Device::Cpu));
        let _ = a
            .get(0)
            .get(1)
            .copy_(&Tensor::arange(16, (Kind::Float, Device::Cpu)).view([4, 4]));
        let flat = channel_pixels(&a, 0).unwrap();
        assert!(flat.iter().all(|v| (v - 128.0 / 255.0).abs() < 1e-6));
        let ramp = channel_pixels(&a, 1).unwrap();
        assert!(ramp
            .iter()
            .all(|v| v.is_finite() && (0.0..=1.0).contains(v)));
        let mean: f32 = ramp.iter().sum::<f32>() / 16.0;
        assert!(
            (mean - 128.0 / 255.0).abs() < 0.02,
            "standardised channels centre on mid-grey: {mean}"
        );
        assert!(feature_map_grid("x", &a).is_ok());
        assert!(feature_map_grid("x", &Tensor::zeros([2, 2], (Kind::Float, Device::Cpu))).is_err());
    }

    #[test]
    fn every_layer_and_grad_cam() {
        let vs = nn::VarStore::new(Device::Cpu);
        let m = Cnn4::new(&vs.root(), &Cnn4Config::default()).unwrap();
        let set = one_image();
        let x = set.images_tensor();
        let layers = feature_maps(tch::no_grad(|| m.activations(&x, false)));
        assert_eq!(
            layers.len(),
            16,
            "conv, act, bn and pool for each of 4 blocks"
        );
        for (n, t) in &layers {
            let fig = feature_map_grid(n, t).unwrap();
            assert!(fig.width > 0);
        }
        let pool4 = &layers.iter().find(|(n, _)| n == "pool4").unwrap().1;
        let fig = feature_map_grid("pool4", pool4).unwrap();
        // A 1×1 layer is drawn as bars, one per channel (the bars' colour is the first class
        // colour), as wide as a 16-tile row and short.
        assert_eq!((fig.width, fig.height), (16 * 56, 220));
        let (r, g, b) = crate::viz::CLASS_COLORS[0];
        let bars = fig.rgb.chunks(3).filter(|p| *p == [r, g, b]).count();
        assert!(bars > 200, "the channels' bars are drawn ({bars} pixels)");
        let cam = grad_cam(&m, &set, 0, None, "act4", Device::Cpu).unwrap();
        assert_eq!(cam.heat.len(), 784);
        assert!(cam
            .heat
            .iter()
            .all(|v| v.is_finite() && (0.0..=1.0).contains(v)));
        assert!(cam.probability > 0.0 && cam.probability < 1.0);
        assert!(grad_cam(&m, &set, 0, Some(12), "act4", Device::Cpu).is_err());
        assert!(grad_cam(&m, &set, 0, None, "nope", Device::Cpu).is_err());
        let fig = grad_cam_overlay(&set, 0, &cam, 4, "pred dress").unwrap();
        assert!(fig.height >= 112);
    }
}
