//! The one table of what the kit knows about each network ([`MODELS`]): its names, parameter
//! count, Grad-CAM layer, batch sizes, memory layout, the original's settings and the sizes each
//! profile trains it with. The CLI, the profiles, training, evaluation, feature maps and the
//! benchmarks read its row ([`ModelKind::spec`]).

use serde::Serialize;
use tch::nn;

use super::backbone::Backbone;
use super::classifier::Classifier;
use super::kind::ModelKind;
use super::network_config::NetworkConfig;
use crate::augment::AugmentConfig;
use crate::error::{Error, Result};

/// How many epochs, at which batch size, on how many training images a profile trains a network.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct RunSizes {
    pub epochs: usize,
    pub batch_size: usize,
    /// The first N images of the 80/20 training split; `None` = all 48,000.
    pub train_subset: Option<usize>,
    /// Side the network resizes its 28×28 input to (`input_size` of its configuration); `None`
    /// for networks that take the images as they are.
    pub input_size: Option<usize>,
    /// The network's filters in percent of the original's (the ResNet's width, see
    /// [`super::ResNetConfig::with_width`]); `None`: the original's.
    pub width_percent: Option<u32>,
}

/// The sizes of one network in each profile (smoke, quick, full).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct ProfileSizes {
    pub smoke: RunSizes,
    pub quick: RunSizes,
    pub full: RunSizes,
}

/// How the original project trained a network, beyond what all its networks shared (Adam at
/// 1e-3, early stopping after 5 epochs): its augmentation and its `ReduceLROnPlateau`.
#[derive(Clone, Copy, Debug)]
pub struct OriginalSettings {
    pub augment: fn() -> AugmentConfig,
    /// Multiply the learning rate by `plateau_factor` after `plateau_patience` epochs without a
    /// better validation loss, down to `plateau_min_lr`.
    pub plateau_factor: f64,
    pub plateau_patience: usize,
    pub plateau_min_lr: f64,
}

/// Everything the kit needs to know about one network.
#[derive(Clone, Copy, Debug)]
pub struct ModelSpec {
    pub kind: ModelKind,
    /// The name used on the command line, in folders and in JSON (`cnn4`).
    pub name: &'static str,
    /// Other names the command line accepts.
    pub aliases: &'static [&'static str],
    /// A human name for titles (`4-layer CNN`).
    pub title: &'static str,
    /// Trainable parameters as Keras counts them (checked by a test).
    pub trainable_params: i64,
    /// Where Grad-CAM looks: the last recorded 4-D output whose name starts with this (the last
    /// convolutional block).
    pub grad_cam_layer: &'static str,
    /// The original's batch size (the training benchmark uses it, as its PyTorch peer does).
    pub original_batch_size: usize,
    /// Images per forward pass when validating, evaluating and predicting. Small batches keep
    /// the activations in the CPU's caches: on a 2-core AMD EPYC, evaluating with test-time flip
    /// ran the CNN at 2,739 images/s in batches of 128 against 1,826 in batches of 1,000, and
    /// the ResNet at 1,704 in batches of 256 against 1,344 (2026-12-04). A transfer network
    /// resizes its `[B, 1, 28, 28]` inputs to its image side (150 px in the full profile), where
    /// a batch of 1,000 needs gigabytes per activation.
    pub eval_batch_size: usize,
    /// Train in channels-last memory order on the CPU: measured ~20 % faster for the CNN and
    /// ~3 % slower for the ResNet on a 2-core CPU (docs/performance.md).
    pub channels_last: bool,
    /// `--precision auto` (the quick profile's) may train this network in bf16 on the CPU.
    /// `auto` decides from a probe of the CNN's step, which holds for networks made of plain
    /// convolutions like it: the CNN and the ResNet. EfficientNet-Lite0's depthwise
    /// convolutions trained at 0.62× their fp32 speed in bf16 on a 2-core AMD EPYC with
    /// AVX-512-bf16 (docs/performance.md), and InceptionV3's step has not been measured, so
    /// both train in fp32 under `auto` on the CPU.
    pub auto_bf16: bool,
    pub original: OriginalSettings,
    pub sizes: ProfileSizes,
    /// The ImageNet backbone of a transfer network.
    pub backbone: Option<Backbone>,
}

/// The sizes of a run: `epochs`, `batch_size`, `train_subset`, `input_size`.
const fn sizes(
    epochs: usize,
    batch_size: usize,
    train: Option<usize>,
    input: Option<usize>,
) -> RunSizes {
    RunSizes {
        epochs,
        batch_size,
        train_subset: train,
        input_size: input,
        width_percent: None,
    }
}

/// The networks, in the walkthrough's order. One row per network: adding one is this row, a
/// [`ModelKind`] variant and its file.
pub static MODELS: [ModelSpec; 4] = [
    ModelSpec {
        kind: ModelKind::Cnn4,
        name: "cnn4",
        aliases: &["cnn"],
        title: "4-layer CNN",
        trainable_params: 660_054,
        grad_cam_layer: "act4",
        original_batch_size: 256,
        eval_batch_size: 128,
        channels_last: true,
        auto_bf16: true,
        original: OriginalSettings {
            augment: AugmentConfig::original_cnn,
            // The original's patience 5 with a floor of 1e-3 never fired at Adam's 1e-3.
            plateau_factor: 0.2,
            plateau_patience: 2,
            plateau_min_lr: 1e-5,
        },
        sizes: ProfileSizes {
            smoke: RunSizes {
                epochs: 2,
                batch_size: 32,
                train_subset: Some(2_000),
                input_size: None,
                width_percent: None,
            },
            // Six epochs (about three minutes on a 2-core CPU) for a walkthrough of about a
            // quarter of an hour; batch 128 measured best for the tuned recipe over 15 epochs.
            quick: RunSizes {
                epochs: 6,
                batch_size: 128,
                train_subset: None,
                input_size: None,
                width_percent: None,
            },
            full: RunSizes {
                epochs: 50,
                batch_size: 128,
                train_subset: None,
                input_size: None,
                width_percent: None,
            },
        },
        backbone: None,
    },
    ModelSpec {
        kind: ModelKind::ResNet,
        name: "resnet",
        aliases: &[],
        title: "ResNet",
        trainable_params: 11_178_378,
        grad_cam_layer: "stage4",
        original_batch_size: 32,
        eval_batch_size: 256,
        channels_last: false,
        auto_bf16: true,
        original: OriginalSettings {
            augment: AugmentConfig::original_resnet,
            plateau_factor: 0.1,
            plateau_patience: 5,
            plateau_min_lr: 1e-6,
        },
        sizes: ProfileSizes {
            smoke: RunSizes {
                epochs: 1,
                batch_size: 32,
                train_subset: Some(512),
                input_size: None,
                width_percent: Some(50),
            },
            // Half the filters (2.8 M weights, a step about 3x faster) for six passes over all
            // 48,000 images: in a budget of minutes, steps count for more than width
            // (docs/performance.md, "What each trick buys").
            quick: RunSizes {
                epochs: 6,
                batch_size: 64,
                train_subset: None,
                input_size: None,
                width_percent: Some(50),
            },
            full: RunSizes {
                epochs: 10,
                batch_size: 32,
                train_subset: None,
                input_size: None,
                width_percent: None,
            },
        },
        backbone: None,
    },
    ModelSpec {
        kind: ModelKind::InceptionV3,
        name: "inception-v3",
        aliases: &["inception", "inceptionv3"],
        title: "InceptionV3 + head",
        trainable_params: 22_839_786,
        grad_cam_layer: "Mixed_7c",
        original_batch_size: 32,
        eval_batch_size: 64,
        channels_last: true,
        auto_bf16: false,
        // The original's transfer notebook shared the ResNet's augmentation and callbacks.
        original: OriginalSettings {
            augment: AugmentConfig::original_resnet,
            plateau_factor: 0.1,
            plateau_patience: 5,
            plateau_min_lr: 1e-6,
        },
        // Fine-tuning sizes (the frozen stage's are the profile's); 75 px is the trunk's minimum.
        sizes: ProfileSizes {
            smoke: sizes(1, 16, Some(64), Some(75)),
            quick: sizes(2, 64, Some(6_000), Some(75)),
            full: sizes(10, 32, None, Some(150)),
        },
        backbone: Some(Backbone::InceptionV3),
    },
    ModelSpec {
        kind: ModelKind::EfficientNetLite0,
        name: "efficientnet-lite0",
        aliases: &["lite0", "efficientnet"],
        title: "EfficientNet-Lite0 + head",
        trainable_params: 4_032_010,
        grad_cam_layer: "head",
        original_batch_size: 32,
        eval_batch_size: 64,
        channels_last: true,
        auto_bf16: false,
        original: OriginalSettings {
            augment: AugmentConfig::original_resnet,
            plateau_factor: 0.1,
            plateau_patience: 5,
            plateau_min_lr: 1e-6,
        },
        sizes: ProfileSizes {
            smoke: sizes(1, 32, Some(256), Some(32)),
            quick: sizes(5, 64, Some(12_000), Some(64)),
            full: sizes(10, 32, None, Some(150)),
        },
        backbone: Some(Backbone::EfficientNetLite0),
    },
];

impl ModelKind {
    /// This network's row of [`MODELS`].
    pub fn spec(self) -> &'static ModelSpec {
        // The rows are in the variants' order (checked by a test).
        &MODELS[self as usize]
    }

    /// Every network, in the walkthrough's order.
    pub fn all() -> Vec<ModelKind> {
        MODELS.iter().map(|s| s.kind).collect()
    }

    /// The names the command line accepts, for messages (`cnn4, resnet`).
    pub fn names() -> String {
        MODELS.iter().map(|s| s.name).collect::<Vec<_>>().join(", ")
    }

    /// Builds this network with its default settings under `vs`.
    pub fn build(self, vs: &nn::Path) -> Result<Box<dyn Classifier>> {
        NetworkConfig::default_for(self).build(vs)
    }
}

impl std::str::FromStr for ModelKind {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        let s = s.trim().to_ascii_lowercase();
        MODELS
            .iter()
            .find(|m| m.name == s || m.aliases.contains(&s.as_str()))
            .map(|m| m.kind)
            .ok_or_else(|| {
                Error::param(
                    "model",
                    format!("{s:?} is not one of {}", ModelKind::names()),
                )
            })
    }
}

/// The networks as a command-line option: the names and aliases of [`MODELS`], each with its
/// title as help.
#[cfg(feature = "cli")]
impl clap::ValueEnum for ModelKind {
    fn value_variants<'a>() -> &'a [Self] {
        static ALL: std::sync::OnceLock<Vec<ModelKind>> = std::sync::OnceLock::new();
        ALL.get_or_init(ModelKind::all)
    }

    fn to_possible_value(&self) -> Option<clap::builder::PossibleValue> {
        let spec = self.spec();
        Some(
            clap::builder::PossibleValue::new(spec.name)
                .aliases(spec.aliases.iter().copied())
                .help(spec.title),
        )
    }
}

impl std::fmt::Display for ModelKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.spec().name)
    }
}

#[cfg(test)]
mod tests {
    use super::super::layers::numel;
    use super::super::{summary, Cnn4, Cnn4Config, ModelSummary, ResNet, ResNetConfig};
    use super::*;
    use tch::nn::ModuleT;
    use tch::Device;
    use tch::{Kind, Tensor};

    fn count(kind: ModelKind) -> (ModelSummary, i64) {
        let vs = nn::VarStore::new(Device::Cpu);
        let m = kind.build(&vs.root()).unwrap();
        let s = summary(m.as_ref(), Device::Cpu).unwrap();
        let trainable: i64 = vs.trainable_variables().iter().map(numel).sum();
        (s, trainable)
    }

    #[test]
    fn parameter_counts_equal_the_original_keras_counts() {
        let (cnn, cnn_vars) = count(ModelKind::Cnn4);
        assert_eq!(cnn.trainable_params, 660_054);
        assert_eq!(
            cnn_vars, 660_054,
            "every trainable variable is counted once"
        );
        let (resnet, resnet_vars) = count(ModelKind::ResNet);
        assert_eq!(resnet.trainable_params, 11_178_378);
        assert_eq!(resnet_vars, 11_178_378);
    }

    #[test]
    fn a_half_width_resnet_has_a_quarter_of_the_weights() {
        let vs = nn::VarStore::new(Device::Cpu);
        let half = NetworkConfig::default_for(ModelKind::ResNet)
            .with_width_percent(Some(50))
            .unwrap();
        let m = half.build(&vs.root()).unwrap();
        let s = summary(m.as_ref(), Device::Cpu).unwrap();
        assert_eq!(s.trainable_params, 2_799_818);
        let NetworkConfig::ResNet(c) = half else {
            panic!("not a ResNet: {half:?}")
        };
        assert_eq!((c.stem_filters, c.stage_filters), (32, [32, 64, 128, 256]));
        let err = NetworkConfig::default_for(ModelKind::Cnn4)
            .with_width_percent(Some(50))
            .unwrap_err();
        assert!(err.to_string().contains("only the ResNet"), "{err}");
        let err = NetworkConfig::default_for(ModelKind::ResNet)
            .with_width_percent(Some(0))
            .unwrap_err();
        assert!(err.to_string().contains("(0, 4]"), "{err}");
        for spec in &MODELS {
            for (profile, sizes) in [
                ("smoke", spec.sizes.smoke),
                ("quick", spec.sizes.quick),
                ("full", spec.sizes.full),
            ] {
                NetworkConfig::default_for(spec.kind)
                    .with_width_percent(sizes.width_percent)
                    .unwrap_or_else(|e| panic!("{} in {profile}: {e}", spec.name));
            }
        }
    }

    #[test]
    fn parameter_counts_split_trainable_and_frozen_weights_and_skip_running_statistics() {
        let vs = nn::VarStore::new(Device::Cpu);
        let _cnn = ModelKind::Cnn4.build(&vs.root()).unwrap();
        let all = super::super::ParameterCounts::of(&vs);
        assert_eq!((all.trainable, all.frozen), (660_054, 0), "{all}");
        let mut frozen = 0;
        for (name, v) in vs.variables() {
            if name.starts_with("conv1") && !name.contains("running") {
                let _ = v.set_requires_grad(false);
                frozen += v.numel() as i64;
            }
        }
        assert!(frozen > 0, "the first block has weights");
        let some = super::super::ParameterCounts::of(&vs);
        assert_eq!((some.trainable, some.frozen), (660_054 - frozen, frozen));
        assert_eq!(some.total(), 660_054);
    }

    #[test]
    fn the_table_is_in_variant_order_and_true_to_each_network() {
        for (i, spec) in MODELS.iter().enumerate() {
            assert_eq!(spec.kind as usize, i, "{} is out of order", spec.name);
            assert_eq!(spec.kind.spec().name, spec.name);
            assert_eq!(spec.name.parse::<ModelKind>().unwrap(), spec.kind);
            let vs = nn::VarStore::new(Device::Cpu);
            let m = spec.kind.build(&vs.root()).unwrap();
            assert_eq!(m.kind(), spec.kind);
            let s = summary(m.as_ref(), Device::Cpu).unwrap();
            assert_eq!(s.trainable_params, spec.trainable_params, "{}", spec.name);
            assert_eq!(
                super::super::ParameterCounts::of(&vs).total(),
                spec.trainable_params,
                "{}: the weights counted from its variables",
                spec.name
            );
            let x = Tensor::zeros([1, 1, 28, 28], (Kind::Float, Device::Cpu));
            let acts = m.activations(&x, false);
            let cam = acts
                .iter()
                .rfind(|(n, t)| n.starts_with(spec.grad_cam_layer) && t.dim() == 4);
            assert!(
                cam.is_some_and(|(_, t)| t.dim() == 4),
                "{}: Grad-CAM layer {} is a recorded 4-D output",
                spec.name,
                spec.grad_cam_layer
            );
            for sizes in [spec.sizes.smoke, spec.sizes.quick, spec.sizes.full] {
                assert!(sizes.epochs >= 1 && sizes.batch_size >= 1);
            }
        }
        assert_eq!("CNN".parse::<ModelKind>().unwrap(), ModelKind::Cnn4);
        let err = "vgg".parse::<ModelKind>().unwrap_err().to_string();
        assert!(err.contains("cnn4, resnet"), "{err}");
        assert_eq!(
            serde_json::to_string(&ModelKind::ResNet).unwrap(),
            "\"resnet\""
        );
    }

    #[test]
    fn shapes_and_activations() {
        let vs = nn::VarStore::new(Device::Cpu);
        let m = Cnn4::new(&vs.root(), &Cnn4Config::default()).unwrap();
        let x = Tensor::rand([3, 1, 28, 28], (Kind::Float, Device::Cpu));
        assert_eq!(m.forward_t(&x, false).size(), vec![3, 10]);
        let acts = m.activations(&x, false);
        let names: Vec<&str> = acts.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(&names[..4], &["conv1", "act1", "bn1", "pool1"]);
        assert_eq!(acts[3].1.size(), vec![3, 32, 14, 14]);
        assert_eq!(m.embedding(&x, false).size(), vec![3, 256]);
        let vs = nn::VarStore::new(Device::Cpu);
        let r = ResNet::new(&vs.root(), &ResNetConfig::default()).unwrap();
        assert_eq!(r.forward_t(&x, false).size(), vec![3, 10]);
        assert_eq!(r.embedding(&x, false).size(), vec![3, 512]);
        let names: Vec<String> = r
            .activations(&x, false)
            .into_iter()
            .map(|(n, _)| n)
            .collect();
        for n in [
            "stem_conv",
            "stage1_block1_conv1",
            "stage1_block1_bn2",
            "stage2_block1_projection",
            "stage4_block2",
            "output",
        ] {
            assert!(names.iter().any(|m| m == n), "{n} recorded");
        }
        let s = summary(&r, Device::Cpu).unwrap();
        assert_eq!(s.layers.last().unwrap().output_shape, vec![None, Some(10)]);
        assert!(s.to_string().contains("Trainable params: 11178378"));
    }
}
