//! The original project's ResNet (ResNet-18 layout on 28×28 inputs, no stem pooling): a 7×7
//! stride-2 convolution (64), batch norm, ReLU; four stages of two basic blocks (64, 128, 256,
//! 512 filters; stride 2 and a 1×1 projection at the first block of stages 2–4); global average
//! pooling; dense 10. L2 1e-4 on every kernel, He-normal init. 11,178,378 trainable parameters.
//! Every convolution, batch norm, activation and projection inside its blocks is recorded by
//! name (`stage2_block1_conv1`, …) for feature maps.

use serde::{Deserialize, Serialize};
use tch::nn::{self, ModuleT};
use tch::Tensor;

use super::classifier::Classifier;
use super::kind::ModelKind;
use super::layers::{bn_params, conv_params, he_conv, keras_bn, linear_params, Recorder};
use crate::error::{Error, Result};

/// Settings of [`ResNet`]; the defaults are the original's.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ResNetConfig {
    /// Filters of the stem and of the four stages.
    pub stem_filters: i64,
    pub stage_filters: [i64; 4],
    /// Basic blocks per stage.
    pub blocks_per_stage: usize,
    /// L2 coefficient on every convolution and dense kernel.
    pub l2: f64,
}

impl Default for ResNetConfig {
    fn default() -> Self {
        ResNetConfig {
            stem_filters: 64,
            stage_filters: [64, 128, 256, 512],
            blocks_per_stage: 2,
            l2: 1e-4,
        }
    }
}

impl ResNetConfig {
    /// The same network with the filters of its stem and of every stage scaled by `factor`
    /// (rounded, at least 1): `0.5` gives 32, 64, 128, 256 filters and 2.8 M parameters
    /// instead of 11.2 M, a quarter of the multiply-adds per image. `factor` must lie in (0, 4].
    pub fn with_width(mut self, factor: f64) -> Result<ResNetConfig> {
        if !(factor > 0.0 && factor <= 4.0) {
            return Err(Error::param(
                "width",
                format!("the ResNet's width factor must lie in (0, 4], got {factor}"),
            ));
        }
        let scale = |f: i64| ((f as f64 * factor).round() as i64).max(1);
        self.stem_filters = scale(self.stem_filters);
        self.stage_filters = self.stage_filters.map(scale);
        Ok(self)
    }
}

#[derive(Debug)]
struct BasicBlock {
    conv1: nn::Conv2D,
    bn1: nn::BatchNorm,
    conv2: nn::Conv2D,
    bn2: nn::BatchNorm,
    projection: Option<nn::Conv2D>,
}

impl BasicBlock {
    fn new(vs: &nn::Path, c_in: i64, c_out: i64, stride: i64) -> BasicBlock {
        BasicBlock {
            conv1: he_conv(vs / "conv1", c_in, c_out, 3, stride),
            bn1: keras_bn(vs / "bn1", c_out),
            conv2: he_conv(vs / "conv2", c_out, c_out, 3, 1),
            bn2: keras_bn(vs / "bn2", c_out),
            projection: (stride != 1 || c_in != c_out)
                .then(|| he_conv(vs / "projection", c_in, c_out, 1, stride)),
        }
    }

    /// The block's output; its inner layers are recorded as `{name}_conv1`, `_bn1`, `_act1`,
    /// `_conv2`, `_bn2` (and `_projection`), then the output itself as `{name}`.
    fn forward(&self, x: &Tensor, train: bool, rec: &mut Recorder<'_>, name: &str) -> Tensor {
        let y = x.apply(&self.conv1);
        rec.keep(format!("{name}_conv1"), &y);
        let y = y.apply_t(&self.bn1, train);
        rec.keep(format!("{name}_bn1"), &y);
        let y = y.relu();
        rec.keep(format!("{name}_act1"), &y);
        let y = y.apply(&self.conv2);
        rec.keep(format!("{name}_conv2"), &y);
        let y = y.apply_t(&self.bn2, train);
        rec.keep(format!("{name}_bn2"), &y);
        let shortcut = match &self.projection {
            Some(p) => {
                let s = x.apply(p);
                rec.keep(format!("{name}_projection"), &s);
                s
            }
            None => x.shallow_clone(),
        };
        let out = (y + shortcut).relu();
        rec.keep(name, &out);
        out
    }

    fn kernels(&self) -> Vec<&Tensor> {
        let mut k = vec![&self.conv1.ws, &self.conv2.ws];
        if let Some(p) = &self.projection {
            k.push(&p.ws);
        }
        k
    }

    fn params(&self) -> i64 {
        conv_params(&self.conv1)
            + bn_params(&self.bn1)
            + conv_params(&self.conv2)
            + bn_params(&self.bn2)
            + self.projection.as_ref().map_or(0, conv_params)
    }
}

/// The original project's ResNet (ResNet-18 layout on 28×28 inputs, no stem pooling).
/// Input `[N, 1, 28, 28]`, logits `[N, 10]`; spatial sides 14 → 14 → 7 → 4 → 2 → pooled.
#[derive(Debug)]
pub struct ResNet {
    stem: nn::Conv2D,
    stem_bn: nn::BatchNorm,
    stages: Vec<Vec<BasicBlock>>,
    output: nn::Linear,
    pub config: ResNetConfig,
}

impl ResNet {
    /// Creates the network's variables under `vs`.
    pub fn new(vs: &nn::Path, config: &ResNetConfig) -> Result<ResNet> {
        if config.blocks_per_stage == 0
            || config.stem_filters < 1
            || config.stage_filters.iter().any(|&f| f < 1)
        {
            return Err(Error::param(
                "config",
                "filters and blocks per stage must be positive",
            ));
        }
        let stem = he_conv(vs / "stem", 1, config.stem_filters, 7, 2);
        let stem_bn = keras_bn(vs / "stem_bn", config.stem_filters);
        let mut stages = Vec::new();
        let mut c_in = config.stem_filters;
        for (s, &f) in config.stage_filters.iter().enumerate() {
            let mut blocks = Vec::new();
            for b in 0..config.blocks_per_stage {
                let stride = if s > 0 && b == 0 { 2 } else { 1 };
                blocks.push(BasicBlock::new(
                    &(vs / format!("stage{}", s + 1) / format!("block{}", b + 1)),
                    c_in,
                    f,
                    stride,
                ));
                c_in = f;
            }
            stages.push(blocks);
        }
        let output = nn::linear(
            vs / "output",
            c_in,
            10,
            nn::LinearConfig {
                ws_init: nn::init::DEFAULT_KAIMING_NORMAL,
                bs_init: Some(nn::Init::Const(0.0)),
                bias: true,
            },
        );
        Ok(ResNet {
            stem,
            stem_bn,
            stages,
            output,
            config: config.clone(),
        })
    }
}

impl ModuleT for ResNet {
    fn forward_t(&self, xs: &Tensor, train: bool) -> Tensor {
        self.run(xs, train, None).1
    }
}

impl Classifier for ResNet {
    fn kind(&self) -> ModelKind {
        ModelKind::ResNet
    }

    fn l2_kernels(&self) -> Vec<(Tensor, f64)> {
        let mut kernels = vec![&self.stem.ws, &self.output.ws];
        for stage in &self.stages {
            for block in stage {
                kernels.extend(block.kernels());
            }
        }
        kernels
            .into_iter()
            .map(|k| (k.shallow_clone(), self.config.l2))
            .collect()
    }

    fn layers(&self) -> Vec<(String, i64)> {
        let mut v = vec![
            ("stem_conv".to_string(), conv_params(&self.stem)),
            ("stem_bn".to_string(), bn_params(&self.stem_bn)),
            ("stem_act".to_string(), 0),
        ];
        for (s, stage) in self.stages.iter().enumerate() {
            for (b, block) in stage.iter().enumerate() {
                v.push((format!("stage{}_block{}", s + 1, b + 1), block.params()));
            }
        }
        v.push(("avg_pool".into(), 0));
        v.push(("output".into(), linear_params(&self.output)));
        v
    }

    fn run(
        &self,
        xs: &Tensor,
        train: bool,
        record: Option<&mut Vec<(String, Tensor)>>,
    ) -> (Tensor, Tensor) {
        let mut rec = Recorder(record);
        let mut x = xs.apply(&self.stem);
        rec.keep("stem_conv", &x);
        x = x.apply_t(&self.stem_bn, train);
        rec.keep("stem_bn", &x);
        x = x.relu();
        rec.keep("stem_act", &x);
        for (s, stage) in self.stages.iter().enumerate() {
            for (b, block) in stage.iter().enumerate() {
                x = block.forward(
                    &x,
                    train,
                    &mut rec,
                    &format!("stage{}_block{}", s + 1, b + 1),
                );
            }
        }
        let pooled = x.adaptive_avg_pool2d([1, 1]).flatten(1, -1);
        rec.keep("avg_pool", &pooled);
        let logits = pooled.apply(&self.output);
        rec.keep("output", &logits);
        (pooled, logits)
    }
}
