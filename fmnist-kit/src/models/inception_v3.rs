//! InceptionV3's trunk (Szegedy et al. 2016), structured and named exactly as torchvision's
//! `inception_v3`, so that a torchvision state dict saved with `safetensors` loads by name
//! (`Conv2d_1a_3x3.conv.weight`, `Mixed_6b.branch7x7_2.bn.running_var`, …). Without the
//! auxiliary classifier and the ImageNet classifier: the output is the 2048-d average-pooled
//! features of `Mixed_7c`.
//!
//! Every convolution is torchvision's `BasicConv2d`: convolution without bias, batch norm
//! (epsilon 1e-3), ReLU. Input `[N, 3, S, S]` with S ≥ 75, normalised as `p / 127.5 − 1` for
//! pixels p in 0..255 (what torchvision's `transform_input` produces from ImageNet-normalised
//! input); output `[N, 2048]`. 21,785,568 trainable parameters.

use tch::nn::{self, ModuleT};
use tch::Tensor;

use super::layers::{FoldedConv, Recorder};
use super::trunk::Trunk;

/// torchvision's `BasicConv2d`: convolution (no bias), batch norm (eps 1e-3), ReLU.
#[derive(Debug)]
struct BasicConv {
    conv: nn::Conv2D,
    bn: nn::BatchNorm,
    stride: i64,
    pad: [i64; 2],
    folded: Option<FoldedConv>,
}

impl BasicConv {
    /// A `kh × kw` convolution with the given stride and padding (both axes).
    fn new(vs: &nn::Path, c_in: i64, c_out: i64, k: [i64; 2], stride: i64, pad: [i64; 2]) -> Self {
        BasicConv {
            conv: nn::conv(
                vs / "conv",
                c_in,
                c_out,
                k,
                nn::ConvConfigND::<[i64; 2]> {
                    stride: [stride, stride],
                    padding: pad,
                    bias: false,
                    ..Default::default()
                },
            ),
            bn: nn::batch_norm2d(
                vs / "bn",
                c_out,
                nn::BatchNormConfig {
                    eps: 1e-3,
                    ..Default::default()
                },
            ),
            stride,
            pad,
            folded: None,
        }
    }

    fn fold(&mut self) {
        self.folded = Some(FoldedConv::new(
            &self.conv.ws,
            &self.bn,
            1e-3,
            [self.stride, self.stride],
            self.pad,
            1,
        ));
    }

    /// A square `k × k` convolution, stride 1, no padding.
    fn square(vs: &nn::Path, c_in: i64, c_out: i64, k: i64) -> Self {
        BasicConv::new(vs, c_in, c_out, [k, k], 1, [0, 0])
    }

    fn forward(&self, x: &Tensor, train: bool) -> Tensor {
        match (&self.folded, train) {
            (Some(f), false) => f.forward(x).relu_(),
            _ => x.apply(&self.conv).apply_t(&self.bn, train).relu(),
        }
    }
}

/// torchvision's 3×3 stride-1 average pooling of the pool branches (padding counted).
fn avg_pool_3x3(x: &Tensor) -> Tensor {
    x.avg_pool2d([3, 3], [1, 1], [1, 1], false, true, None)
}

fn max_pool_3x3_s2(x: &Tensor) -> Tensor {
    x.max_pool2d([3, 3], [2, 2], [0, 0], [1, 1], false)
}

/// `Mixed_5b`–`Mixed_5d` (InceptionA): 1×1, 5×5, double 3×3 and pool branches.
#[derive(Debug)]
struct InceptionA {
    b1: BasicConv,
    b5_1: BasicConv,
    b5_2: BasicConv,
    b3_1: BasicConv,
    b3_2: BasicConv,
    b3_3: BasicConv,
    pool: BasicConv,
}

impl InceptionA {
    fn fold(&mut self) {
        for c in [
            &mut self.b1,
            &mut self.b5_1,
            &mut self.b5_2,
            &mut self.b3_1,
            &mut self.b3_2,
            &mut self.b3_3,
            &mut self.pool,
        ] {
            c.fold();
        }
    }

    fn new(vs: &nn::Path, c_in: i64, pool_features: i64) -> Self {
        InceptionA {
            b1: BasicConv::square(&(vs / "branch1x1"), c_in, 64, 1),
            b5_1: BasicConv::square(&(vs / "branch5x5_1"), c_in, 48, 1),
            b5_2: BasicConv::new(&(vs / "branch5x5_2"), 48, 64, [5, 5], 1, [2, 2]),
            b3_1: BasicConv::square(&(vs / "branch3x3dbl_1"), c_in, 64, 1),
            b3_2: BasicConv::new(&(vs / "branch3x3dbl_2"), 64, 96, [3, 3], 1, [1, 1]),
            b3_3: BasicConv::new(&(vs / "branch3x3dbl_3"), 96, 96, [3, 3], 1, [1, 1]),
            pool: BasicConv::square(&(vs / "branch_pool"), c_in, pool_features, 1),
        }
    }

    fn forward(&self, x: &Tensor, t: bool) -> Tensor {
        let b1 = self.b1.forward(x, t);
        let b5 = self.b5_2.forward(&self.b5_1.forward(x, t), t);
        let b3 = self.b3_1.forward(x, t);
        let b3 = self.b3_3.forward(&self.b3_2.forward(&b3, t), t);
        let bp = self.pool.forward(&avg_pool_3x3(x), t);
        Tensor::cat(&[b1, b5, b3, bp], 1)
    }
}

/// `Mixed_6a` (InceptionB): stride-2 3×3, double 3×3 and max-pool branches.
#[derive(Debug)]
struct InceptionB {
    b3: BasicConv,
    b3_1: BasicConv,
    b3_2: BasicConv,
    b3_3: BasicConv,
}

impl InceptionB {
    fn fold(&mut self) {
        for c in [&mut self.b3, &mut self.b3_1, &mut self.b3_2, &mut self.b3_3] {
            c.fold();
        }
    }

    fn new(vs: &nn::Path, c_in: i64) -> Self {
        InceptionB {
            b3: BasicConv::new(&(vs / "branch3x3"), c_in, 384, [3, 3], 2, [0, 0]),
            b3_1: BasicConv::square(&(vs / "branch3x3dbl_1"), c_in, 64, 1),
            b3_2: BasicConv::new(&(vs / "branch3x3dbl_2"), 64, 96, [3, 3], 1, [1, 1]),
            b3_3: BasicConv::new(&(vs / "branch3x3dbl_3"), 96, 96, [3, 3], 2, [0, 0]),
        }
    }

    fn forward(&self, x: &Tensor, t: bool) -> Tensor {
        let b3 = self.b3.forward(x, t);
        let bd = self.b3_1.forward(x, t);
        let bd = self.b3_3.forward(&self.b3_2.forward(&bd, t), t);
        Tensor::cat(&[b3, bd, max_pool_3x3_s2(x)], 1)
    }
}

/// `Mixed_6b`–`Mixed_6e` (InceptionC): factorised 7×7 branches.
#[derive(Debug)]
struct InceptionC {
    b1: BasicConv,
    b7: [BasicConv; 3],
    b7dbl: [BasicConv; 5],
    pool: BasicConv,
}

impl InceptionC {
    fn fold(&mut self) {
        self.b1.fold();
        self.pool.fold();
        self.b7
            .iter_mut()
            .chain(self.b7dbl.iter_mut())
            .for_each(BasicConv::fold);
    }

    fn new(vs: &nn::Path, c_in: i64, c7: i64) -> Self {
        let row =
            |name: &str, i: i64, o: i64| BasicConv::new(&(vs / name), i, o, [1, 7], 1, [0, 3]);
        let col =
            |name: &str, i: i64, o: i64| BasicConv::new(&(vs / name), i, o, [7, 1], 1, [3, 0]);
        InceptionC {
            b1: BasicConv::square(&(vs / "branch1x1"), c_in, 192, 1),
            b7: [
                BasicConv::square(&(vs / "branch7x7_1"), c_in, c7, 1),
                row("branch7x7_2", c7, c7),
                col("branch7x7_3", c7, 192),
            ],
            b7dbl: [
                BasicConv::square(&(vs / "branch7x7dbl_1"), c_in, c7, 1),
                col("branch7x7dbl_2", c7, c7),
                row("branch7x7dbl_3", c7, c7),
                col("branch7x7dbl_4", c7, c7),
                row("branch7x7dbl_5", c7, 192),
            ],
            pool: BasicConv::square(&(vs / "branch_pool"), c_in, 192, 1),
        }
    }

    fn forward(&self, x: &Tensor, t: bool) -> Tensor {
        let chain = |convs: &[BasicConv]| {
            convs
                .iter()
                .fold(x.shallow_clone(), |h, c| c.forward(&h, t))
        };
        let b1 = self.b1.forward(x, t);
        let bp = self.pool.forward(&avg_pool_3x3(x), t);
        Tensor::cat(&[b1, chain(&self.b7), chain(&self.b7dbl), bp], 1)
    }
}

/// `Mixed_7a` (InceptionD): stride-2 3×3 and 7×7×3 branches and max pooling.
#[derive(Debug)]
struct InceptionD {
    b3: [BasicConv; 2],
    b7x3: [BasicConv; 4],
}

impl InceptionD {
    fn fold(&mut self) {
        self.b3
            .iter_mut()
            .chain(self.b7x3.iter_mut())
            .for_each(BasicConv::fold);
    }

    fn new(vs: &nn::Path, c_in: i64) -> Self {
        InceptionD {
            b3: [
                BasicConv::square(&(vs / "branch3x3_1"), c_in, 192, 1),
                BasicConv::new(&(vs / "branch3x3_2"), 192, 320, [3, 3], 2, [0, 0]),
            ],
            b7x3: [
                BasicConv::square(&(vs / "branch7x7x3_1"), c_in, 192, 1),
                BasicConv::new(&(vs / "branch7x7x3_2"), 192, 192, [1, 7], 1, [0, 3]),
                BasicConv::new(&(vs / "branch7x7x3_3"), 192, 192, [7, 1], 1, [3, 0]),
                BasicConv::new(&(vs / "branch7x7x3_4"), 192, 192, [3, 3], 2, [0, 0]),
            ],
        }
    }

    fn forward(&self, x: &Tensor, t: bool) -> Tensor {
        let chain = |convs: &[BasicConv]| {
            convs
                .iter()
                .fold(x.shallow_clone(), |h, c| c.forward(&h, t))
        };
        Tensor::cat(&[chain(&self.b3), chain(&self.b7x3), max_pool_3x3_s2(x)], 1)
    }
}

/// `Mixed_7b`, `Mixed_7c` (InceptionE): expanded 3×3 branches split into 1×3 and 3×1.
#[derive(Debug)]
struct InceptionE {
    b1: BasicConv,
    b3_1: BasicConv,
    b3_2a: BasicConv,
    b3_2b: BasicConv,
    bd_1: BasicConv,
    bd_2: BasicConv,
    bd_3a: BasicConv,
    bd_3b: BasicConv,
    pool: BasicConv,
}

impl InceptionE {
    fn fold(&mut self) {
        for c in [
            &mut self.b1,
            &mut self.b3_1,
            &mut self.b3_2a,
            &mut self.b3_2b,
            &mut self.bd_1,
            &mut self.bd_2,
            &mut self.bd_3a,
            &mut self.bd_3b,
            &mut self.pool,
        ] {
            c.fold();
        }
    }

    fn new(vs: &nn::Path, c_in: i64) -> Self {
        InceptionE {
            b1: BasicConv::square(&(vs / "branch1x1"), c_in, 320, 1),
            b3_1: BasicConv::square(&(vs / "branch3x3_1"), c_in, 384, 1),
            b3_2a: BasicConv::new(&(vs / "branch3x3_2a"), 384, 384, [1, 3], 1, [0, 1]),
            b3_2b: BasicConv::new(&(vs / "branch3x3_2b"), 384, 384, [3, 1], 1, [1, 0]),
            bd_1: BasicConv::square(&(vs / "branch3x3dbl_1"), c_in, 448, 1),
            bd_2: BasicConv::new(&(vs / "branch3x3dbl_2"), 448, 384, [3, 3], 1, [1, 1]),
            bd_3a: BasicConv::new(&(vs / "branch3x3dbl_3a"), 384, 384, [1, 3], 1, [0, 1]),
            bd_3b: BasicConv::new(&(vs / "branch3x3dbl_3b"), 384, 384, [3, 1], 1, [1, 0]),
            pool: BasicConv::square(&(vs / "branch_pool"), c_in, 192, 1),
        }
    }

    fn forward(&self, x: &Tensor, t: bool) -> Tensor {
        let b1 = self.b1.forward(x, t);
        let b3 = self.b3_1.forward(x, t);
        let b3 = Tensor::cat(&[self.b3_2a.forward(&b3, t), self.b3_2b.forward(&b3, t)], 1);
        let bd = self.bd_2.forward(&self.bd_1.forward(x, t), t);
        let bd = Tensor::cat(&[self.bd_3a.forward(&bd, t), self.bd_3b.forward(&bd, t)], 1);
        let bp = self.pool.forward(&avg_pool_3x3(x), t);
        Tensor::cat(&[b1, b3, bd, bp], 1)
    }
}

/// One stage of the trunk, in order.
#[derive(Debug)]
enum Stage {
    Conv(BasicConv),
    MaxPool,
    A(InceptionA),
    B(InceptionB),
    C(InceptionC),
    D(InceptionD),
    E(InceptionE),
}

/// InceptionV3 up to its pooled features.
#[derive(Debug)]
pub struct InceptionV3 {
    /// `(torchvision's name, stage)` in order; pools are named `maxpool1`, `maxpool2`.
    stages: Vec<(&'static str, Stage)>,
    /// A handle on `Conv2d_1a_3x3.conv.weight`.
    stem_kernel: Tensor,
}

impl InceptionV3 {
    /// Creates the variables under `vs` with torchvision's names, randomly initialised.
    pub fn new(vs: &nn::Path) -> InceptionV3 {
        let conv = |name: &'static str, i, o, k, s, p| {
            (
                name,
                Stage::Conv(BasicConv::new(&(vs / name), i, o, [k, k], s, [p, p])),
            )
        };
        let stages = vec![
            conv("Conv2d_1a_3x3", 3, 32, 3, 2, 0),
            conv("Conv2d_2a_3x3", 32, 32, 3, 1, 0),
            conv("Conv2d_2b_3x3", 32, 64, 3, 1, 1),
            ("maxpool1", Stage::MaxPool),
            conv("Conv2d_3b_1x1", 64, 80, 1, 1, 0),
            conv("Conv2d_4a_3x3", 80, 192, 3, 1, 0),
            ("maxpool2", Stage::MaxPool),
            (
                "Mixed_5b",
                Stage::A(InceptionA::new(&(vs / "Mixed_5b"), 192, 32)),
            ),
            (
                "Mixed_5c",
                Stage::A(InceptionA::new(&(vs / "Mixed_5c"), 256, 64)),
            ),
            (
                "Mixed_5d",
                Stage::A(InceptionA::new(&(vs / "Mixed_5d"), 288, 64)),
            ),
            (
                "Mixed_6a",
                Stage::B(InceptionB::new(&(vs / "Mixed_6a"), 288)),
            ),
            (
                "Mixed_6b",
                Stage::C(InceptionC::new(&(vs / "Mixed_6b"), 768, 128)),
            ),
            (
                "Mixed_6c",
                Stage::C(InceptionC::new(&(vs / "Mixed_6c"), 768, 160)),
            ),
            (
                "Mixed_6d",
                Stage::C(InceptionC::new(&(vs / "Mixed_6d"), 768, 160)),
            ),
            (
                "Mixed_6e",
                Stage::C(InceptionC::new(&(vs / "Mixed_6e"), 768, 192)),
            ),
            (
                "Mixed_7a",
                Stage::D(InceptionD::new(&(vs / "Mixed_7a"), 768)),
            ),
            (
                "Mixed_7b",
                Stage::E(InceptionE::new(&(vs / "Mixed_7b"), 1280)),
            ),
            (
                "Mixed_7c",
                Stage::E(InceptionE::new(&(vs / "Mixed_7c"), 2048)),
            ),
        ];
        let stem_kernel = match &stages[0].1 {
            Stage::Conv(c) => c.conv.ws.shallow_clone(),
            _ => Tensor::new(),
        };
        InceptionV3 {
            stages,
            stem_kernel,
        }
    }
}

impl Trunk for InceptionV3 {
    fn first_kernel(&self) -> &Tensor {
        &self.stem_kernel
    }

    fn fold_batch_norm(&mut self) {
        for (_, stage) in &mut self.stages {
            match stage {
                Stage::Conv(c) => c.fold(),
                Stage::MaxPool => {}
                Stage::A(m) => m.fold(),
                Stage::B(m) => m.fold(),
                Stage::C(m) => m.fold(),
                Stage::D(m) => m.fold(),
                Stage::E(m) => m.fold(),
            }
        }
    }

    fn forward(&self, x: &Tensor, train: bool, rec: &mut Recorder<'_>) -> Tensor {
        let mut x = x.shallow_clone();
        for (name, stage) in &self.stages {
            x = match stage {
                Stage::Conv(c) => c.forward(&x, train),
                Stage::MaxPool => max_pool_3x3_s2(&x),
                Stage::A(m) => m.forward(&x, train),
                Stage::B(m) => m.forward(&x, train),
                Stage::C(m) => m.forward(&x, train),
                Stage::D(m) => m.forward(&x, train),
                Stage::E(m) => m.forward(&x, train),
            };
            rec.keep(*name, &x);
        }
        x.adaptive_avg_pool2d([1, 1]).flatten(1, -1)
    }
}

impl ModuleT for InceptionV3 {
    fn forward_t(&self, xs: &Tensor, train: bool) -> Tensor {
        Trunk::forward(self, xs, train, &mut Recorder(None))
    }
}
