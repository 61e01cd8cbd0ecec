//! What every network of the kit offers ([`Classifier`]): logits, named layers, its L2 penalty
//! and its intermediate outputs (for feature maps, Grad-CAM and embeddings).

use tch::nn::ModuleT;
use tch::{Kind, Tensor};

use super::kind::ModelKind;

/// A network of the kit: a `ModuleT` that also names its layers, reports its L2 penalty and
/// exposes intermediate activations. Every network takes images `[N, 1, 28, 28]` (floats in
/// 0..1) and returns logits `[N, 10]`.
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
    /// The layers and their trainable parameter counts, in order, for [`super::summary`].
    fn layers(&self) -> Vec<(String, i64)>;
    /// Runs the network on `xs` (`[N, 1, 28, 28]`), pushing every named intermediate output onto
    /// `record` when one is given. Returns the embedding before the classifier (`[N, D]`) and the
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

    /// The embedding: output of the layer before the classifier (`[N, D]`).
    fn embedding(&self, xs: &Tensor, train: bool) -> Tensor {
        self.run(xs, train, None).0
    }
}
