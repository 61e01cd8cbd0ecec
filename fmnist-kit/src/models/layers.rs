//! Building blocks shared by the networks: Keras-style initialisers and batch norm, parameter
//! counts, and the recorder of named intermediate outputs.

use tch::nn;
use tch::{Device, Tensor};

/// Pushes named outputs onto an optional list (the `record` of
/// [`super::Classifier::run`]); with `None` it keeps nothing.
pub struct Recorder<'a>(pub Option<&'a mut Vec<(String, Tensor)>>);

impl Recorder<'_> {
    /// Keeps a shallow handle on `t` under `name`.
    pub fn keep(&mut self, name: impl Into<String>, t: &Tensor) {
        if let Some(r) = self.0.as_deref_mut() {
            r.push((name.into(), t.shallow_clone()));
        }
    }
}

pub(crate) fn numel(t: &Tensor) -> i64 {
    t.size().iter().product()
}

pub(crate) fn conv_params(c: &nn::Conv2D) -> i64 {
    numel(&c.ws) + c.bs.as_ref().map_or(0, numel)
}

pub(crate) fn linear_params(l: &nn::Linear) -> i64 {
    numel(&l.ws) + l.bs.as_ref().map_or(0, numel)
}

pub(crate) fn bn_params(b: &nn::BatchNorm) -> i64 {
    b.ws.as_ref().map_or(0, numel) + b.bs.as_ref().map_or(0, numel)
}

pub(crate) fn keras_bn(vs: nn::Path, channels: i64) -> nn::BatchNorm {
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
pub(crate) fn glorot_uniform(fan_in: i64, fan_out: i64) -> nn::Init {
    let limit = (6.0 / (fan_in + fan_out) as f64).sqrt();
    nn::Init::Uniform {
        lo: -limit,
        up: limit,
    }
}

pub(crate) fn he_conv(vs: nn::Path, c_in: i64, c_out: i64, k: i64, stride: i64) -> nn::Conv2D {
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

/// A copy of `t` (`[N, C, H, W]`) with the same shape in channels-last memory order
/// (strides of `[N, H, W, C]`), which libtorch's CPU convolutions then keep for their output.
/// A single-channel tensor gets channels-last strides too (its memory is the same), since
/// libtorch reads the layout from the strides.
pub fn to_channels_last(t: &Tensor) -> Tensor {
    let size = t.size();
    if size.len() == 4 && size[1] == 1 {
        let (h, w) = (size[2], size[3]);
        t.contiguous()
            .as_strided(size.as_slice(), [h * w, 1, w, 1].as_slice(), None)
    } else {
        t.permute([0, 2, 3, 1]).contiguous().permute([0, 3, 1, 2])
    }
}

/// A convolution with the batch norm after it folded in (`w·γ/σ`, `β − μ·γ/σ` as bias), for
/// inference with fixed statistics: one pass instead of two. The weights are computed once
/// from the layers' current values (in their memory layout) and do not follow later changes.
#[derive(Debug)]
pub struct FoldedConv {
    weight: Tensor,
    bias: Tensor,
    stride: [i64; 2],
    padding: [i64; 2],
    groups: i64,
}

impl FoldedConv {
    /// Folds `bn` (epsilon `eps`) into the bias-free convolution kernel `kernel`.
    pub fn new(
        kernel: &Tensor,
        bn: &nn::BatchNorm,
        eps: f64,
        stride: [i64; 2],
        padding: [i64; 2],
        groups: i64,
    ) -> FoldedConv {
        tch::no_grad(|| {
            let inv_std = (&bn.running_var + eps).rsqrt();
            let scale = match &bn.ws {
                Some(g) => g * &inv_std,
                None => inv_std,
            };
            let shift = match &bn.bs {
                Some(b) => b - &bn.running_mean * &scale,
                None => -(&bn.running_mean * &scale),
            };
            let mut weight = kernel * scale.view([-1, 1, 1, 1]);
            if kernel.dim() == 4 && kernel.stride()[1] == 1 && kernel.size()[1] > 1 {
                weight = to_channels_last(&weight);
            }
            FoldedConv {
                weight,
                bias: shift,
                stride,
                padding,
                groups,
            }
        })
    }

    /// The convolution followed by the batch norm, as one convolution with a bias.
    pub fn forward(&self, x: &Tensor) -> Tensor {
        x.conv2d(
            &self.weight,
            Some(&self.bias),
            self.stride,
            self.padding,
            [1, 1],
            self.groups,
        )
    }
}

/// True when a 4-D tensor's memory is in channels-last order (and not also contiguous: a tensor
/// with one channel or a 1×1 extent, e.g. a pointwise kernel, is both, and counts as neither).
pub(crate) fn is_channels_last(t: &Tensor) -> bool {
    let (size, stride) = (t.size(), t.stride());
    size.len() == 4
        && size[1] > 1
        && size[2] * size[3] > 1
        && stride[1] == 1
        && t.device() == Device::Cpu
}
