//! Batched, seeded data augmentation on the training device.
//!
//! Every operation works on a whole batch `[N, C, H, W]` (floats in 0..1) with tensor ops: the
//! random parameters of all images are drawn at once from the augmenter's own ChaCha generator
//! (so a seed gives the same batch on any device and is independent of torch's global RNG), and
//! the geometric transforms (flip, shifts, zoom) are fused into one gather with nearest fill
//! (edge pixels repeated, Keras's `fill_mode="nearest"`).
//!
//! Presets follow the original project with its intended behaviour rather than its bugs:
//! erasing after the 1/255 rescale (so "random values 0–1" are really random greys, not black),
//! vertical height shifts, brightness without uint8 truncation.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;
use tch::{Device, Kind, Tensor};

use crate::error::{Error, Result};

/// What fills an erased rectangle.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub enum EraseFill {
    /// Every pixel drawn uniformly from `[lo, hi]` (the original: 0..1).
    Uniform { lo: f64, hi: f64 },
    /// One constant value (the paper's "mean" fill: the dataset's mean pixel, 0.2860).
    Constant(f64),
}

/// Random erasing (Zhong et al. 2017): with probability `p`, a rectangle of area fraction in
/// `area` and aspect ratio (height / width) in `aspect` is filled.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct RandomErasing {
    pub p: f64,
    pub area: (f64, f64),
    pub aspect: (f64, f64),
    pub fill: EraseFill,
    /// Tries to place a rectangle inside the image before giving up on that image.
    pub attempts: usize,
}

impl RandomErasing {
    /// The original project's eraser: p 0.5, area 0.02–0.1, aspect 0.1–10, uniform 0–1 pixels.
    pub fn original() -> RandomErasing {
        RandomErasing {
            p: 0.5,
            area: (0.02, 0.1),
            aspect: (0.1, 10.0),
            fill: EraseFill::Uniform { lo: 0.0, hi: 1.0 },
            attempts: 10,
        }
    }

    /// The paper's Fashion-MNIST setting: p 0.5, area 0.02–0.4, aspect 0.3–3.33, mean fill.
    pub fn paper() -> RandomErasing {
        RandomErasing {
            p: 0.5,
            area: (0.02, 0.4),
            aspect: (0.3, 1.0 / 0.3),
            fill: EraseFill::Constant(0.2860),
            attempts: 10,
        }
    }
}

/// Augmentation settings. All ranges are symmetric around "no change".
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct AugmentConfig {
    /// Mirror left-right with probability 0.5.
    pub horizontal_flip: bool,
    /// Maximum horizontal shift as a fraction of the width (Keras `width_shift_range`).
    pub width_shift: f64,
    /// Maximum vertical shift as a fraction of the height (Keras `height_shift_range`).
    pub height_shift: f64,
    /// Zoom factor drawn from `[1 - zoom, 1 + zoom]`, independently per axis (Keras `zoom_range`).
    pub zoom: f64,
    /// Multiply pixels by a factor drawn from this range, then clip to 0..1.
    pub brightness: Option<(f64, f64)>,
    pub erasing: Option<RandomErasing>,
}

impl Default for AugmentConfig {
    /// No augmentation.
    fn default() -> Self {
        AugmentConfig {
            horizontal_flip: false,
            width_shift: 0.0,
            height_shift: 0.0,
            zoom: 0.0,
            brightness: None,
            erasing: None,
        }
    }
}

impl AugmentConfig {
    /// The original CNN pipeline: brightness 0.5–1.5, horizontal flip, height shift 0.2
    /// (vertical here; Keras 2 shifted horizontally), random erasing as the original.
    pub fn original_cnn() -> AugmentConfig {
        AugmentConfig {
            horizontal_flip: true,
            height_shift: 0.2,
            brightness: Some((0.5, 1.5)),
            erasing: Some(RandomErasing::original()),
            ..Default::default()
        }
    }

    /// The original ResNet / Inception pipeline: flip, width and height shift 0.1, erasing.
    pub fn original_resnet() -> AugmentConfig {
        AugmentConfig {
            horizontal_flip: true,
            width_shift: 0.1,
            height_shift: 0.1,
            erasing: Some(RandomErasing::original()),
            ..Default::default()
        }
    }

    /// True when the config changes nothing.
    pub fn is_identity(&self) -> bool {
        *self == AugmentConfig::default()
    }

    fn validate(&self) -> Result<()> {
        let frac = |name: &'static str, v: f64| {
            if (0.0..1.0).contains(&v) {
                Ok(())
            } else {
                Err(Error::param(name, format!("{v} is not in [0, 1)")))
            }
        };
        frac("width_shift", self.width_shift)?;
        frac("height_shift", self.height_shift)?;
        frac("zoom", self.zoom)?;
        if let Some((lo, hi)) = self.brightness {
            if !(lo >= 0.0 && lo <= hi && hi.is_finite()) {
                return Err(Error::param(
                    "brightness",
                    format!("({lo}, {hi}) is not a range of non-negative factors"),
                ));
            }
        }
        if let Some(e) = &self.erasing {
            if !(0.0..=1.0).contains(&e.p) {
                return Err(Error::param(
                    "erasing.p",
                    format!("{} is not a probability", e.p),
                ));
            }
            if !(e.area.0 > 0.0 && e.area.0 <= e.area.1 && e.area.1 <= 1.0) {
                return Err(Error::param(
                    "erasing.area",
                    format!("{:?} is not a range inside (0, 1]", e.area),
                ));
            }
            if !(e.aspect.0 > 0.0 && e.aspect.0 <= e.aspect.1 && e.aspect.1.is_finite()) {
                return Err(Error::param(
                    "erasing.aspect",
                    format!("{:?} is not a positive range", e.aspect),
                ));
            }
            if e.attempts == 0 {
                return Err(Error::param("erasing.attempts", "must be at least 1"));
            }
        }
        Ok(())
    }
}

/// Each augmentation of the kit on its own, then the original's two pipelines: the rows of
/// notebook 02's gallery.
pub fn showcase() -> Vec<(String, AugmentConfig)> {
    let none = AugmentConfig::default();
    vec![
        ("original".into(), none.clone()),
        (
            "flip".into(),
            AugmentConfig {
                horizontal_flip: true,
                ..none.clone()
            },
        ),
        (
            "width shift 0.2".into(),
            AugmentConfig {
                width_shift: 0.2,
                ..none.clone()
            },
        ),
        (
            "height shift 0.2".into(),
            AugmentConfig {
                height_shift: 0.2,
                ..none.clone()
            },
        ),
        (
            "zoom 0.2".into(),
            AugmentConfig {
                zoom: 0.2,
                ..none.clone()
            },
        ),
        (
            "brightness 0.5-1.5".into(),
            AugmentConfig {
                brightness: Some((0.5, 1.5)),
                ..none.clone()
            },
        ),
        (
            "erasing (original)".into(),
            AugmentConfig {
                erasing: Some(RandomErasing {
                    p: 1.0,
                    ..RandomErasing::original()
                }),
                ..none.clone()
            },
        ),
        (
            // The original's bug: it erased before the 1/255 rescale, so its "random values
            // 0–1" were 0–1 on the 0–255 scale, at most 1/255 afterwards: background-coloured
            // holes rather than noise.
            "erasing, as the original ran it".into(),
            AugmentConfig {
                erasing: Some(RandomErasing {
                    p: 1.0,
                    fill: EraseFill::Uniform {
                        lo: 0.0,
                        hi: 1.0 / 255.0,
                    },
                    ..RandomErasing::original()
                }),
                ..none.clone()
            },
        ),
        (
            "erasing (paper)".into(),
            AugmentConfig {
                erasing: Some(RandomErasing {
                    p: 1.0,
                    ..RandomErasing::paper()
                }),
                ..none.clone()
            },
        ),
        ("CNN pipeline".into(), AugmentConfig::original_cnn()),
        ("ResNet pipeline".into(), AugmentConfig::original_resnet()),
    ]
}

/// The rectangles one call of [`Augmenter::apply_recorded`] erased, one entry per image.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct ErasedBoxes {
    /// Whether image `i` was erased.
    pub applied: Vec<bool>,
    pub top: Vec<i64>,
    pub left: Vec<i64>,
    pub height: Vec<i64>,
    pub width: Vec<i64>,
    /// The drawn area fraction and aspect ratio the rectangle was made from.
    pub area_fraction: Vec<f64>,
    pub aspect: Vec<f64>,
}

/// Applies an [`AugmentConfig`] to batches, drawing from its own seeded generator.
#[derive(Clone, Debug)]
pub struct Augmenter {
    pub config: AugmentConfig,
    rng: ChaCha8Rng,
}

impl Augmenter {
    /// An augmenter with its own generator seeded by `seed`.
    pub fn new(config: AugmentConfig, seed: u64) -> Result<Augmenter> {
        config.validate()?;
        Ok(Augmenter {
            config,
            rng: ChaCha8Rng::seed_from_u64(seed),
        })
    }

    /// `n` values uniform in `[lo, hi)` as a float tensor on `device`.
    fn uniform(&mut self, shape: &[i64], lo: f64, hi: f64, device: Device) -> Tensor {
        let n: i64 = shape.iter().product();
        let v: Vec<f32> = (0..n).map(|_| self.rng.random::<f32>()).collect();
        let t = Tensor::from_slice(&v).view(shape).to_device(device);
        t * (hi - lo) + lo
    }

    /// Augments a batch `[N, C, H, W]` (floats in 0..1).
    pub fn apply(&mut self, images: &Tensor) -> Result<Tensor> {
        Ok(self.apply_recorded(images)?.0)
    }

    /// Augments a batch and also returns the erased rectangles.
    pub fn apply_recorded(&mut self, images: &Tensor) -> Result<(Tensor, ErasedBoxes)> {
        let size = images.size();
        let [n, _c, h, w] = size[..] else {
            return Err(Error::param(
                "images",
                format!("expected [N, C, H, W], got {size:?}"),
            ));
        };
        let device = images.device();
        let cfg = self.config.clone();
        let mut x = images.shallow_clone();
        if cfg.horizontal_flip || cfg.width_shift > 0.0 || cfg.height_shift > 0.0 || cfg.zoom > 0.0
        {
            let flip = if cfg.horizontal_flip {
                self.uniform(&[n], 0.0, 1.0, device)
                    .lt(0.5)
                    .to_kind(Kind::Float)
            } else {
                Tensor::zeros([n], (Kind::Float, device))
            };
            let dx = self.uniform(&[n], -cfg.width_shift, cfg.width_shift, device) * w as f64;
            let dy = self.uniform(&[n], -cfg.height_shift, cfg.height_shift, device) * h as f64;
            let zx = self.uniform(&[n], 1.0 - cfg.zoom, 1.0 + cfg.zoom, device);
            let zy = self.uniform(&[n], 1.0 - cfg.zoom, 1.0 + cfg.zoom, device);
            x = transform(&x, &flip, &dx, &dy, &zx, &zy)?;
        }
        if let Some((lo, hi)) = cfg.brightness {
            let factor = self.uniform(&[n, 1, 1, 1], lo, hi, device);
            x = (x * factor).clamp(0.0, 1.0);
        }
        let mut boxes = ErasedBoxes::default();
        if let Some(e) = &cfg.erasing {
            let (erased, b) = self.erase(&x, e)?;
            x = erased;
            boxes = b;
        }
        Ok((x, boxes))
    }

    fn erase(&mut self, x: &Tensor, e: &RandomErasing) -> Result<(Tensor, ErasedBoxes)> {
        let size = x.size();
        let (n, c, h, w) = (size[0], size[1], size[2], size[3]);
        let device = x.device();
        let a = e.attempts as i64;
        let cpu = Device::Cpu;
        // All attempts for all images at once, on the CPU (small: N × attempts values).
        let wanted = self.uniform(&[n], 0.0, 1.0, cpu).lt(e.p);
        let area = self.uniform(&[n, a], e.area.0, e.area.1, cpu);
        let aspect = self.uniform(&[n, a], e.aspect.0, e.aspect.1, cpu);
        let pixels = (h * w) as f64;
        let bh = (&area * &aspect * pixels)
            .sqrt()
            .round()
            .to_kind(Kind::Int64);
        let bw = (&area / &aspect * pixels)
            .sqrt()
            .round()
            .to_kind(Kind::Int64);
        let top = (self.uniform(&[n, a], 0.0, 1.0, cpu) * h as f64)
            .floor()
            .to_kind(Kind::Int64);
        let left = (self.uniform(&[n, a], 0.0, 1.0, cpu) * w as f64)
            .floor()
            .to_kind(Kind::Int64);
        let fits = bh
            .ge(1)
            .logical_and(&bw.ge(1))
            .logical_and(&(&top + &bh).le(h))
            .logical_and(&(&left + &bw).le(w));
        // First fitting attempt of each image (argmax returns the first maximum).
        let first = fits.to_kind(Kind::Int64).argmax(1, true);
        let pick = |t: &Tensor| t.gather(1, &first, false).squeeze_dim(1);
        let applied = wanted.logical_and(&fits.any_dim(1, false));
        let (top, left, bh, bw) = (pick(&top), pick(&left), pick(&bh), pick(&bw));
        let (area, aspect) = (pick(&area), pick(&aspect));

        let to_dev = |t: &Tensor| t.to_device(device).view([n, 1, 1, 1]);
        let ys = Tensor::arange(h, (Kind::Int64, device)).view([1, 1, h, 1]);
        let xs = Tensor::arange(w, (Kind::Int64, device)).view([1, 1, 1, w]);
        let (t4, l4, h4, w4) = (to_dev(&top), to_dev(&left), to_dev(&bh), to_dev(&bw));
        let mask = ys
            .ge_tensor(&t4)
            .logical_and(&ys.lt_tensor(&(&t4 + &h4)))
            .logical_and(&xs.ge_tensor(&l4))
            .logical_and(&xs.lt_tensor(&(&l4 + &w4)))
            .logical_and(&to_dev(&applied));
        let fill = match e.fill {
            EraseFill::Uniform { lo, hi } => self.uniform(&[n, c, h, w], lo, hi, device),
            EraseFill::Constant(v) => Tensor::full([1, 1, 1, 1], v, (Kind::Float, device)),
        };
        let out = fill.to_kind(x.kind()).where_self(&mask, x);
        let vec_i = |t: &Tensor| Vec::<i64>::try_from(t).map_err(Error::Torch);
        let vec_f =
            |t: &Tensor| Vec::<f64>::try_from(t.to_kind(Kind::Double)).map_err(Error::Torch);
        let boxes = ErasedBoxes {
            applied: Vec::<bool>::try_from(&applied)?,
            top: vec_i(&top)?,
            left: vec_i(&left)?,
            height: vec_i(&bh)?,
            width: vec_i(&bw)?,
            area_fraction: vec_f(&area)?,
            aspect: vec_f(&aspect)?,
        };
        Ok((out, boxes))
    }
}

/// Flip, shift and zoom a batch `[N, C, H, W]` in one gather with nearest fill.
///
/// Per image `i`: `flip[i]` (1 = mirror left-right), shifts `dx[i]`, `dy[i]` in pixels
/// (positive moves content right / down), zoom factors `zx[i]`, `zy[i]` (> 1 magnifies).
/// Each output pixel takes the input pixel nearest to its source point; points outside the
/// image take the nearest edge pixel.
pub fn transform(
    x: &Tensor,
    flip: &Tensor,
    dx: &Tensor,
    dy: &Tensor,
    zx: &Tensor,
    zy: &Tensor,
) -> Result<Tensor> {
    let size = x.size();
    let [n, c, h, w] = size[..] else {
        return Err(Error::param(
            "images",
            format!("expected [N, C, H, W], got {size:?}"),
        ));
    };
    let device = x.device();
    let opts = (Kind::Float, device);
    let col = |t: &Tensor| t.to_kind(Kind::Float).to_device(device).view([n, 1, 1]);
    let (cx, cy) = ((w - 1) as f64 / 2.0, (h - 1) as f64 / 2.0);
    let xs = Tensor::arange(w, opts).view([1, 1, w]);
    let ys = Tensor::arange(h, opts).view([1, h, 1]);
    let f = col(flip);
    // Source column: undo the shift, then the zoom (about the centre), then the flip.
    let sx = (&xs - col(dx) - cx) / col(zx) + cx;
    let mirrored = sx.neg() + (w - 1) as f64;
    let sx: Tensor = &f * mirrored + (f.neg() + 1.0) * &sx;
    let sy = (&ys - col(dy) - cy) / col(zy) + cy;
    let ix = sx.round().clamp(0.0, (w - 1) as f64).to_kind(Kind::Int64);
    let iy = sy.round().clamp(0.0, (h - 1) as f64).to_kind(Kind::Int64);
    let idx = (iy * w + ix)
        .view([n, 1, h * w])
        .expand([n, c, h * w], false);
    Ok(x.reshape([n, c, h * w])
        .f_gather(2, &idx, false)?
        .view([n, c, h, w]))
}

/// Mirrors a batch `[N, C, H, W]` left-right (an exact mirror, no randomness).
pub fn flip_horizontal(x: &Tensor) -> Tensor {
    x.flip([3])
}

/// Shifts every image of `x` by `dx` pixels right and `dy` down, filling with edge pixels.
pub fn shift(x: &Tensor, dx: i64, dy: i64) -> Result<Tensor> {
    let n = x.size().first().copied().unwrap_or(0);
    let dev = x.device();
    let full = |v: f64| Tensor::full([n], v, (Kind::Float, dev));
    transform(
        x,
        &full(0.0),
        &full(dx as f64),
        &full(dy as f64),
        &full(1.0),
        &full(1.0),
    )
}

#[cfg(test)]
mod tests;
