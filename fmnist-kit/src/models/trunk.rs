//! What every ImageNet trunk offers ([`Trunk`]): pooled trunk features of a preprocessed batch.

use tch::Tensor;

use super::layers::Recorder;

/// A backbone's trunk: preprocessed images `[N, 3, S, S]` to pooled features `[N, D]`.
pub trait Trunk: std::fmt::Debug + Send {
    /// Pooled features of `x`; every stage's 4-D output is recorded by name. `train` puts batch
    /// norm in training mode (and turns stochastic depth on, where the network has it).
    fn forward(&self, x: &Tensor, train: bool, rec: &mut Recorder<'_>) -> Tensor;
    /// The stem's kernel (to read the memory layout of the trunk's variables).
    fn first_kernel(&self) -> &Tensor;
    /// For inference with fixed weights (a frozen feature extractor): folds every batch norm
    /// into its convolution, so that forward passes in evaluation mode run one convolution with
    /// a bias instead of a convolution and a batch norm. Training-mode passes are unchanged;
    /// the folded weights do not follow later changes of the variables.
    fn fold_batch_norm(&mut self);
}
