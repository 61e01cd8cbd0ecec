//! A backbone's trunk as a feature extractor (evaluation mode, ImageNet or random weights), and
//! the cache of extracted features keyed by everything that determines them.

use std::path::{Path, PathBuf};
use std::time::Instant;

use serde::{Deserialize, Serialize};
use tch::{nn, Device, Kind, Tensor};

use crate::data::ImageSet;
use crate::error::{Error, Result};
use crate::models::{
    load_trunk_weights, preprocess, to_channels_last, Backbone, Recorder, Trunk, Weights,
};
use crate::train::{Autocast, InterruptGuard, Precision};
use crate::util::{cache_root, content_hash, progress_line, write_atomic};

/// The weights a trunk holds, as recorded in results: the file and its sha256, or `random`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum WeightsRecord {
    ImageNet { path: PathBuf, sha256: String },
    Random(String),
}

impl WeightsRecord {
    /// A short label for titles: `ImageNet weights` or `random initialisation (seed 13)`.
    pub fn label(&self) -> String {
        match self {
            WeightsRecord::ImageNet { .. } => "ImageNet weights".into(),
            WeightsRecord::Random(s) => format!("random initialisation ({s})"),
        }
    }

    /// Part of the feature cache's key.
    fn key(&self) -> String {
        match self {
            WeightsRecord::ImageNet { sha256, .. } => sha256.chars().take(16).collect(),
            WeightsRecord::Random(s) => s.replace(' ', "-"),
        }
    }
}

/// Builds a trunk under `vs / "trunk"` and fills it from `weights`.
pub(crate) fn trunk_with_weights(
    vs: &nn::VarStore,
    backbone: Backbone,
    weights: &Weights,
) -> Result<(Box<dyn Trunk>, WeightsRecord)> {
    match weights {
        Weights::Random { seed } => {
            tch::manual_seed(*seed as i64);
            let trunk = backbone.build_trunk(&(vs.root() / "trunk"));
            Ok((trunk, WeightsRecord::Random(format!("random seed {seed}"))))
        }
        Weights::ImageNet(path) => {
            let trunk = backbone.build_trunk(&(vs.root() / "trunk"));
            let info = load_trunk_weights(vs, "trunk.", backbone, path)?;
            Ok((
                trunk,
                WeightsRecord::ImageNet {
                    path: info.path,
                    sha256: info.sha256,
                },
            ))
        }
    }
}

/// A trunk in evaluation mode that turns images into pooled features `[N, D]`.
pub struct FeatureExtractor {
    pub backbone: Backbone,
    pub image_size: usize,
    pub weights: WeightsRecord,
    pub device: Device,
    /// Images per forward pass.
    pub batch_size: usize,
    /// Forward passes in bf16 under autocast (see [`crate::train::Precision`]).
    pub bf16: bool,
    /// Seconds between progress lines while extracting (0: none, the default).
    pub progress_seconds: f64,
    vs: nn::VarStore,
    trunk: Box<dyn Trunk>,
}

impl std::fmt::Debug for FeatureExtractor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "FeatureExtractor({}, {} px, {})",
            self.backbone,
            self.image_size,
            self.weights.label()
        )
    }
}

impl FeatureExtractor {
    /// Sets the precision of the trunk's forward passes (bf16 autocast where `precision`
    /// resolves to it on this extractor's device).
    pub fn set_precision(&mut self, precision: Precision) {
        self.bf16 = precision.resolve(self.device).0;
    }

    /// The trunk of `backbone` with `weights`, taking images resized to `image_size`. On the
    /// CPU its kernels are put in channels-last order (measured faster for both trunks).
    pub fn new(
        backbone: Backbone,
        weights: &Weights,
        image_size: usize,
        device: Device,
    ) -> Result<FeatureExtractor> {
        if image_size < backbone.min_input() {
            return Err(Error::param(
                "image_size",
                format!(
                    "{image_size} is below {}'s minimum input of {} pixels",
                    backbone.title(),
                    backbone.min_input()
                ),
            ));
        }
        let mut vs = nn::VarStore::new(device);
        let (mut trunk, weights) = trunk_with_weights(&vs, backbone, weights)?;
        vs.freeze();
        if device == Device::Cpu {
            tch::no_grad(|| -> Result<()> {
                for (_, v) in vs.variables() {
                    if v.dim() == 4 {
                        v.shallow_clone().f_set_data(&to_channels_last(&v))?;
                    }
                }
                Ok(())
            })?;
        }
        // The extractor's weights never change: each batch norm becomes part of its convolution.
        trunk.fold_batch_norm();
        Ok(FeatureExtractor {
            backbone,
            image_size,
            weights,
            device,
            batch_size: 64,
            bf16: false,
            progress_seconds: 0.0,
            vs,
            trunk,
        })
    }

    /// The trunk's variables (e.g. to copy them into a network to fine-tune).
    pub fn var_store(&self) -> &nn::VarStore {
        &self.vs
    }

    /// Images `[N, 1, 28, 28]` as the trunk receives them: `[N, 3, S, S]`, normalised.
    pub fn preprocess(&self, images: &Tensor) -> Result<Tensor> {
        preprocess(self.backbone, images, self.image_size)
    }

    /// Pooled features `[N, D]` (on the CPU) of `set`, in its order. An interrupt (SIGINT) stops
    /// it between two batches with [`Error::Interrupted`]: nothing is cached, and calling it
    /// again extracts from the first image.
    pub fn extract(&self, set: &ImageSet) -> Result<Tensor> {
        if set.is_empty() {
            return Err(Error::param("set", "no image to extract features from"));
        }
        let x = set.images_tensor();
        let n = set.len() as i64;
        let bs = self.batch_size.max(1) as i64;
        let mut out = Vec::with_capacity((n / bs + 1) as usize);
        let start = Instant::now();
        let mut last_print = Instant::now();
        let interrupt = InterruptGuard::install_own()?;
        tch::no_grad(|| -> Result<()> {
            let _autocast = Autocast::enter(self.device, self.bf16);
            let mut i = 0;
            while i < n {
                if interrupt.is_requested() {
                    return Err(Error::Interrupted {
                        what: "feature extraction",
                        message: format!(
                            "stopped after {i} of {n} images; nothing was cached, and running it again extracts them from the first"
                        ),
                    });
                }
                if self.progress_seconds > 0.0
                    && i > 0
                    && last_print.elapsed().as_secs_f64() >= self.progress_seconds
                {
                    let rate = i as f64 / start.elapsed().as_secs_f64();
                    progress_line(&format!(
                        "  features: {i}/{n} images, {rate:.0} images/s, about {:.0} s left",
                        (n - i) as f64 / rate
                    ));
                    last_print = Instant::now();
                }
                let len = bs.min(n - i);
                let mut xb = self.preprocess(&x.narrow(0, i, len).to_device(self.device))?;
                if self.device == Device::Cpu {
                    xb = to_channels_last(&xb);
                }
                let f = self.trunk.forward(&xb, false, &mut Recorder(None));
                out.push(f.to_device(Device::Cpu).to_kind(Kind::Float));
                i += len;
            }
            Ok(())
        })?;
        Ok(Tensor::cat(&out, 0))
    }

    /// The cache file of `set`'s features: keyed by the backbone, the image size, the weights
    /// (sha256, or the random seed and the kind of device whose generator drew them: the CPU's
    /// and CUDA's give different trunks from one seed) and a hash of the images and labels.
    pub fn cache_path(&self, set: &ImageSet) -> PathBuf {
        let data = content_hash([set.images.as_slice(), set.labels.as_slice()]);
        let drawn_on = match (&self.weights, self.device) {
            (WeightsRecord::Random(_), Device::Cpu) => "-cpu",
            (WeightsRecord::Random(_), _) => "-cuda",
            (WeightsRecord::ImageNet { .. }, _) => "",
        };
        cache_root().join("features").join(format!(
            "{}-{}px-{}{drawn_on}{}-{}.safetensors",
            self.backbone,
            self.image_size,
            self.weights.key(),
            if self.bf16 { "-bf16" } else { "" },
            &data[..16]
        ))
    }

    /// Features of `set` from the cache when they are there and pass their content check (the
    /// hash of the tensor's bytes, written beside the file as `<file>.xxh3` after it), else
    /// extracted and cached; the note then says why the cache was rebuilt.
    pub fn extract_cached(&self, set: &ImageSet) -> Result<CachedFeatures> {
        let path = self.cache_path(set);
        let start = Instant::now();
        let mut note = None;
        if path.is_file() {
            match read_features(&path, set.len() as i64, self.backbone.feature_size()) {
                Ok(features) => {
                    return Ok(CachedFeatures {
                        features,
                        from_cache: true,
                        seconds: start.elapsed().as_secs_f64(),
                        path,
                        note: None,
                    })
                }
                Err(e) => note = Some(format!("cache file unusable, extracted again: {e}")),
            }
        }
        let features = self.extract(set)?;
        let written = crate::train::checkpoint::write_tensors_atomic(
            &path,
            &[("features".to_string(), features.shallow_clone())],
        )
        .and_then(|()| write_atomic(&hash_path(&path), features_hash(&features)?.as_bytes()));
        if let Err(e) = written {
            note = Some(format!("features not cached: {e}"));
        }
        Ok(CachedFeatures {
            features,
            from_cache: false,
            seconds: start.elapsed().as_secs_f64(),
            path,
            note,
        })
    }
}

/// Features with where they came from.
#[derive(Debug)]
pub struct CachedFeatures {
    /// `[N, D]` on the CPU.
    pub features: Tensor,
    pub from_cache: bool,
    pub seconds: f64,
    pub path: PathBuf,
    /// Set when the cache could not be read or written (the features are right either way).
    pub note: Option<String>,
}

/// The file holding the content hash of the features cached in `path`.
fn hash_path(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".xxh3");
    PathBuf::from(name)
}

/// The hash of a features tensor's bytes (`[N, D]` float32).
fn features_hash(t: &Tensor) -> Result<String> {
    let t = t.to_kind(tch::Kind::Float).contiguous();
    let numel = t.numel();
    let mut bytes = vec![0u8; numel * 4];
    t.f_copy_data_u8(&mut bytes, numel)
        .map_err(|e| Error::param("features", e.to_string()))?;
    Ok(content_hash([bytes.as_slice()]))
}

fn read_features(path: &Path, n: i64, d: i64) -> Result<Tensor> {
    let tensors = Tensor::read_safetensors(path)
        .map_err(|e| Error::data(path, "safetensors", e.to_string()))?;
    let (_, t) = tensors
        .into_iter()
        .find(|(name, _)| name == "features")
        .ok_or_else(|| Error::data(path, "features", "no tensor named features"))?;
    if t.size() != [n, d] {
        return Err(Error::data(
            path,
            "features",
            format!("shape {:?}, expected [{n}, {d}]", t.size()),
        ));
    }
    let hash_file = hash_path(path);
    let want = std::fs::read_to_string(&hash_file)
        .map_err(|e| Error::data(&hash_file, "content hash", e.to_string()))?;
    let got = features_hash(&t)?;
    if want.trim() != got {
        return Err(Error::data(
            path,
            "features",
            format!(
                "the content check failed (hash {got}, {} says {})",
                hash_file.display(),
                want.trim()
            ),
        ));
    }
    Ok(t)
}
