//! The networks of the walkthrough, as in the original Keras project (DESIGN §4).
//!
//! - [`Cnn4`]: four 3×3 "same" convolutions (32, 68, 128, 256 filters), each followed by ReLU,
//!   batch normalisation and 2×2 max pooling; then dense 512 and 256 (L2 0.01 on their kernels,
//!   ReLU, dropout 0.5) and a 10-way output. 660,054 trainable parameters at its defaults.
//! - [`ResNet`]: a 7×7 stride-2 convolution (64), batch norm, ReLU; four stages of two basic
//!   blocks (64, 128, 256, 512 filters; stride 2 and a 1×1 projection at the first block of
//!   stages 2–4); global average pooling; dense 10. L2 1e-4 on every kernel, He-normal init.
//!   11,178,378 trainable parameters. Every convolution, batch norm, activation and projection
//!   inside its blocks is recorded by name (`stage2_block1_conv1`, …) for feature maps.
//!
//! Both take images `[N, 1, 28, 28]` (floats in 0..1) and return logits `[N, 10]`. Like Keras,
//! convolutions carry biases and batch norm has epsilon 1e-3. Its running statistics move at
//! PyTorch's rate 0.1 rather than Keras's 0.01 (momentum 0.99): at Keras's rate, after the 188
//! batches of a first epoch the running statistics were still far from the data, and the
//! validation accuracy read 0.19 while the training accuracy was 0.72 (measured), which misleads
//! early stopping and the learning-rate schedule. Counts follow Keras: batch norm's scale and shift
//! are trainable, its running statistics are not.

use serde::Serialize;
use tch::nn::{self, ModuleT};
use tch::{Device, Kind, Tensor};

use crate::error::{Error, Result};

/// Which network.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ModelKind {
    Cnn4,
    ResNet,
}

impl std::str::FromStr for ModelKind {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s.to_ascii_lowercase().as_str() {
            "cnn4" | "cnn" => Ok(ModelKind::Cnn4),
            "resnet" => Ok(ModelKind::ResNet),
            other => Err(Error::param(
                "model",
                format!("{other:?} is not one of cnn4, resnet"),
            )),
        }
    }
}

impl std::fmt::Display for ModelKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ModelKind::Cnn4 => "cnn4",
            ModelKind::ResNet => "resnet",
        })
    }
}

/// Non-linearity of the CNN's hidden layers.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub enum Activation {
    Relu,
    /// Leaky ReLU with the given negative slope.
    LeakyRelu(f64),
    Elu,
}

impl Activation {
    /// Applies the activation.
    pub fn apply(&self, x: &Tensor) -> Tensor {
        match *self {
            Activation::Relu => x.relu(),
            Activation::LeakyRelu(slope) => x.maximum(&(x * slope)),
            Activation::Elu => x.elu(),
        }
    }
}

/// A network of the kit: a `ModuleT` that also names its layers, reports its L2 penalty and
/// exposes intermediate activations.
pub trait Classifier: ModuleT {
    /// Which network this is.
    fn kind(&self) -> ModelKind;
    /// The kernels the original regularised (Keras's `kernel_regularizer`), each with its L2
    /// coefficient (shallow handles on the variables themselves).
    fn l2_kernels(&self) -> Vec<(Tensor, f64)>;
    /// `Σ coefficient × Σ w²` over [`Classifier::l2_kernels`] (a scalar tensor).
    fn l2_penalty(&self) -> Tensor {
        let kernels = self.l2_kernels();
        let device = kernels
            .first()
            .map_or(tch::Device::Cpu, |(k, _)| k.device());
        let mut total = Tensor::zeros([], (Kind::Float, device));
        for (k, c) in kernels {
            total += k.square().sum(Kind::Float) * c;
        }
        total
    }
    /// The layers and their trainable parameter counts, in order, for [`summary`].
    fn layers(&self) -> Vec<(String, i64)>;
    /// Runs the network on `xs` (`[N, 1, 28, 28]`), pushing every named intermediate output onto
    /// `record` when one is given. Returns the features before the classifier (`[N, D]`) and the
    /// logits (`[N, 10]`).
    fn run(
        &self,
        xs: &Tensor,
        train: bool,
        record: Option<&mut Vec<(String, Tensor)>>,
    ) -> (Tensor, Tensor);

    /// Every named intermediate output for `xs`, in order, ending with the logits.
    fn activations(&self, xs: &Tensor, train: bool) -> Vec<(String, Tensor)> {
        let mut out = Vec::new();
        let _ = self.run(xs, train, Some(&mut out));
        out
    }

    /// Output of the layer before the classifier (`[N, D]`): the learned features.
    fn features(&self, xs: &Tensor, train: bool) -> Tensor {
        self.run(xs, train, None).0
    }
}

/// Pushes named outputs onto an optional list (the `record` of [`Classifier::run`]).
struct Recorder<'a>(Option<&'a mut Vec<(String, Tensor)>>);

impl Recorder<'_> {
    fn keep(&mut self, name: impl Into<String>, t: &Tensor) {
        if let Some(r) = self.0.as_deref_mut() {
            r.push((name.into(), t.shallow_clone()));
        }
    }
}

fn numel(t: &Tensor) -> i64 {
    t.size().iter().product()
}

fn conv_params(c: &nn::Conv2D) -> i64 {
    numel(&c.ws) + c.bs.as_ref().map_or(0, numel)
}

fn linear_params(l: &nn::Linear) -> i64 {
    numel(&l.ws) + l.bs.as_ref().map_or(0, numel)
}

fn bn_params(b: &nn::BatchNorm) -> i64 {
    b.ws.as_ref().map_or(0, numel) + b.bs.as_ref().map_or(0, numel)
}

fn keras_bn(vs: nn::Path, channels: i64) -> nn::BatchNorm {
    nn::batch_norm2d(
        vs,
        channels,
        nn::BatchNormConfig {
            eps: 1e-3,
            momentum: 0.1,
            ..Default::default()
        },
    )
}

/// Keras's default kernel initialiser (Glorot uniform) for a kernel of the given fans.
fn glorot_uniform(fan_in: i64, fan_out: i64) -> nn::Init {
    let limit = (6.0 / (fan_in + fan_out) as f64).sqrt();
    nn::Init::Uniform {
        lo: -limit,
        up: limit,
    }
}

// ---------------------------------------------------------------------------------------------
// Cnn4
// ---------------------------------------------------------------------------------------------

/// Settings of [`Cnn4`]; the defaults are the original's.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Cnn4Config {
    /// Filters of the four convolutions.
    pub filters: [i64; 4],
    /// Sizes of the hidden dense layers.
    pub dense: Vec<i64>,
    /// Dropout after each hidden dense layer.
    pub dropout: f64,
    pub activation: Activation,
    /// L2 coefficient on the hidden dense kernels (Keras `l2(0.01)`).
    pub dense_l2: f64,
}

impl Default for Cnn4Config {
    fn default() -> Self {
        Cnn4Config {
            filters: [32, 68, 128, 256],
            dense: vec![512, 256],
            dropout: 0.5,
            activation: Activation::Relu,
            dense_l2: 0.01,
        }
    }
}

/// The original project's 4-layer CNN. Input `[N, 1, 28, 28]`, logits `[N, 10]`.
#[derive(Debug)]
pub struct Cnn4 {
    convs: Vec<nn::Conv2D>,
    norms: Vec<nn::BatchNorm>,
    dense: Vec<nn::Linear>,
    output: nn::Linear,
    pub config: Cnn4Config,
}

impl Cnn4 {
    /// Creates the network's variables under `vs`.
    pub fn new(vs: &nn::Path, config: &Cnn4Config) -> Result<Cnn4> {
        if config.filters.iter().any(|&f| f < 1) || config.dense.iter().any(|&d| d < 1) {
            return Err(Error::param(
                "config",
                "filters and dense sizes must be positive",
            ));
        }
        if !(0.0..1.0).contains(&config.dropout) {
            return Err(Error::param(
                "dropout",
                format!("{} is not in [0, 1)", config.dropout),
            ));
        }
        let mut convs = Vec::new();
        let mut norms = Vec::new();
        let mut c_in = 1;
        for (i, &f) in config.filters.iter().enumerate() {
            convs.push(nn::conv2d(
                vs / format!("conv{}", i + 1),
                c_in,
                f,
                3,
                nn::ConvConfig {
                    padding: 1,
                    ws_init: glorot_uniform(c_in * 9, f * 9),
                    ..Default::default()
                },
            ));
            norms.push(keras_bn(vs / format!("bn{}", i + 1), f));
            c_in = f;
        }
        // 28 → 14 → 7 → 3 → 1 after four 2×2 poolings (floor, as Keras's "valid" pooling).
        let mut side = 28;
        for _ in 0..4 {
            side /= 2;
        }
        let mut d_in = c_in * side * side;
        let mut dense = Vec::new();
        for (i, &d) in config.dense.iter().enumerate() {
            dense.push(nn::linear(
                vs / format!("dense{}", i + 1),
                d_in,
                d,
                nn::LinearConfig {
                    ws_init: glorot_uniform(d_in, d),
                    bs_init: Some(nn::Init::Const(0.0)),
                    bias: true,
                },
            ));
            d_in = d;
        }
        let output = nn::linear(
            vs / "output",
            d_in,
            10,
            nn::LinearConfig {
                ws_init: glorot_uniform(d_in, 10),
                bs_init: Some(nn::Init::Const(0.0)),
                bias: true,
            },
        );
        Ok(Cnn4 {
            convs,
            norms,
            dense,
            output,
            config: config.clone(),
        })
    }
}

impl ModuleT for Cnn4 {
    fn forward_t(&self, xs: &Tensor, train: bool) -> Tensor {
        self.run(xs, train, None).1
    }
}

impl Classifier for Cnn4 {
    fn kind(&self) -> ModelKind {
        ModelKind::Cnn4
    }

    fn l2_kernels(&self) -> Vec<(Tensor, f64)> {
        self.dense
            .iter()
            .map(|d| (d.ws.shallow_clone(), self.config.dense_l2))
            .collect()
    }

    fn layers(&self) -> Vec<(String, i64)> {
        let mut v = Vec::new();
        for (i, (c, b)) in self.convs.iter().zip(&self.norms).enumerate() {
            let n = i + 1;
            v.push((format!("conv{n}"), conv_params(c)));
            v.push((format!("act{n}"), 0));
            v.push((format!("bn{n}"), bn_params(b)));
            v.push((format!("pool{n}"), 0));
        }
        for (i, d) in self.dense.iter().enumerate() {
            v.push((format!("dense{}", i + 1), linear_params(d)));
        }
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
        let mut x = xs.shallow_clone();
        for (i, (conv, bn)) in self.convs.iter().zip(&self.norms).enumerate() {
            let n = i + 1;
            x = x.apply(conv);
            rec.keep(format!("conv{n}"), &x);
            x = self.config.activation.apply(&x);
            rec.keep(format!("act{n}"), &x);
            x = x.apply_t(bn, train);
            rec.keep(format!("bn{n}"), &x);
            x = x.max_pool2d_default(2);
            rec.keep(format!("pool{n}"), &x);
        }
        x = x.flatten(1, -1);
        for (i, d) in self.dense.iter().enumerate() {
            x = self.config.activation.apply(&x.apply(d));
            rec.keep(format!("dense{}", i + 1), &x);
            x = x.dropout(self.config.dropout, train);
        }
        let logits = x.apply(&self.output);
        rec.keep("output", &logits);
        (x, logits)
    }
}

// ---------------------------------------------------------------------------------------------
// ResNet
// ---------------------------------------------------------------------------------------------

/// Settings of [`ResNet`]; the defaults are the original's.
#[derive(Clone, Debug, PartialEq, Serialize)]
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

#[derive(Debug)]
struct BasicBlock {
    conv1: nn::Conv2D,
    bn1: nn::BatchNorm,
    conv2: nn::Conv2D,
    bn2: nn::BatchNorm,
    projection: Option<nn::Conv2D>,
}

fn he_conv(vs: nn::Path, c_in: i64, c_out: i64, k: i64, stride: i64) -> nn::Conv2D {
    nn::conv2d(
        vs,
        c_in,
        c_out,
        k,
        nn::ConvConfig {
            stride,
            padding: k / 2,
            ws_init: nn::init::DEFAULT_KAIMING_NORMAL,
            ..Default::default()
        },
    )
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

/// Builds a network of the given kind with its default (original) settings under `vs`.
pub fn build(kind: ModelKind, vs: &nn::Path) -> Result<Box<dyn Classifier>> {
    Ok(match kind {
        ModelKind::Cnn4 => Box::new(Cnn4::new(vs, &Cnn4Config::default())?),
        ModelKind::ResNet => Box::new(ResNet::new(vs, &ResNetConfig::default())?),
    })
}

/// One row of a model summary.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct LayerSummary {
    pub name: String,
    /// Output shape with the batch dimension first (given as `None`, as Keras prints it).
    pub output_shape: Vec<Option<i64>>,
    pub params: i64,
}

/// A summary like Keras's `model.summary()`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ModelSummary {
    pub model: ModelKind,
    pub layers: Vec<LayerSummary>,
    pub trainable_params: i64,
}

impl std::fmt::Display for ModelSummary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "Model: {}", self.model)?;
        writeln!(
            f,
            "{:<22} {:<22} {:>12}",
            "Layer", "Output shape", "Param #"
        )?;
        writeln!(f, "{}", "=".repeat(58))?;
        for l in &self.layers {
            let shape: Vec<String> = l
                .output_shape
                .iter()
                .map(|d| d.map_or("None".to_string(), |v| v.to_string()))
                .collect();
            writeln!(
                f,
                "{:<22} {:<22} {:>12}",
                l.name,
                format!("({})", shape.join(", ")),
                l.params
            )?;
        }
        writeln!(f, "{}", "=".repeat(58))?;
        write!(f, "Trainable params: {}", self.trainable_params)
    }
}

/// Summarises `model` by running one blank image through it (in evaluation mode).
pub fn summary(model: &dyn Classifier, device: Device) -> Result<ModelSummary> {
    let x = Tensor::zeros([1, 1, 28, 28], (Kind::Float, device));
    let shapes: std::collections::HashMap<String, Vec<i64>> = tch::no_grad(|| {
        model
            .activations(&x, false)
            .into_iter()
            .map(|(n, t)| (n, t.size()))
            .collect()
    });
    let layers: Vec<LayerSummary> = model
        .layers()
        .into_iter()
        .map(|(name, params)| {
            let dims = shapes.get(&name).cloned().unwrap_or_default();
            let mut output_shape = vec![None];
            output_shape.extend(dims.iter().skip(1).map(|&d| Some(d)));
            LayerSummary {
                name,
                output_shape,
                params,
            }
        })
        .collect();
    let trainable_params = layers.iter().map(|l| l.params).sum();
    Ok(ModelSummary {
        model: model.kind(),
        layers,
        trainable_params,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn count(kind: ModelKind) -> (ModelSummary, i64) {
        let vs = nn::VarStore::new(Device::Cpu);
        let m = build(kind, &vs.root()).unwrap();
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
    fn shapes_and_activations() {
        let vs = nn::VarStore::new(Device::Cpu);
        let m = Cnn4::new(&vs.root(), &Cnn4Config::default()).unwrap();
        let x = Tensor::rand([3, 1, 28, 28], (Kind::Float, Device::Cpu));
        assert_eq!(m.forward_t(&x, false).size(), vec![3, 10]);
        let acts = m.activations(&x, false);
        let names: Vec<&str> = acts.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(&names[..4], &["conv1", "act1", "bn1", "pool1"]);
        assert_eq!(acts[3].1.size(), vec![3, 32, 14, 14]);
        assert_eq!(m.features(&x, false).size(), vec![3, 256]);
        let vs = nn::VarStore::new(Device::Cpu);
        let r = ResNet::new(&vs.root(), &ResNetConfig::default()).unwrap();
        assert_eq!(r.forward_t(&x, false).size(), vec![3, 10]);
        assert_eq!(r.features(&x, false).size(), vec![3, 512]);
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

    #[test]
    fn l2_penalty_matches_its_definition() {
        let vs = nn::VarStore::new(Device::Cpu);
        let m = Cnn4::new(&vs.root(), &Cnn4Config::default()).unwrap();
        let expected: f64 = m
            .dense
            .iter()
            .map(|d| d.ws.square().sum(Kind::Double).double_value(&[]) * 0.01)
            .sum();
        assert!((m.l2_penalty().double_value(&[]) - expected).abs() < 1e-4 * expected.max(1.0));
        assert!(Cnn4::new(
            &vs.root(),
            &Cnn4Config {
                dropout: 1.0,
                ..Default::default()
            }
        )
        .is_err());
    }
}
