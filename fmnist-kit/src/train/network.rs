//! A trained network for inference: what it was built from, its variables and device, and
//! nothing of training. Load one from a checkpoint folder with [`TrainedNetwork::load`], build
//! an untrained one with [`TrainedNetwork::untrained`], or take the one a [`super::Trainer`]
//! holds. Evaluation, feature maps, Grad-CAM and t-SNE of embeddings go through it and never
//! build an optimiser.

use std::path::Path;

use serde::{Deserialize, Serialize};
use tch::{nn, Device, Kind, Tensor};

use super::checkpoint::NetworkFile;
use super::precision::{Autocast, Precision};
use crate::data::{ImageSet, NUM_CLASSES};
use crate::error::{Error, Result};
use crate::metrics::Predictions;
use crate::models::{
    self, is_channels_last, to_channels_last, Classifier, ModelKind, ModelSummary, NetworkConfig,
};

/// Loss, accuracy and confusion matrix on a labelled set.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Evaluation {
    pub loss: f64,
    pub accuracy: f64,
    pub images: usize,
    /// `confusion[true][predicted]`: how many images of each class went to each class.
    #[serde(default)]
    pub confusion: [[u64; NUM_CLASSES]; NUM_CLASSES],
}

/// A network with its variables on a device, in evaluation mode for everything it computes.
pub struct TrainedNetwork {
    pub kind: ModelKind,
    pub device: Device,
    /// Images per forward pass when predicting or evaluating [default: the network's
    /// `ModelSpec::eval_batch_size`].
    pub batch_size: usize,
    /// Forward passes in bf16 under autocast (see [`super::Precision`]).
    pub bf16: bool,
    /// Kernels in channels-last memory order while predicting or evaluating on the CPU
    /// [default: the network's `ModelSpec::channels_last`; a trainer's: its config's].
    pub channels_last: bool,
    /// Score every image as the mean of the class probabilities of the image and of its mirror
    /// image (`[B, C, H, W]` flipped along W), in [`Self::predict_proba`], [`Self::predict`] and
    /// [`Self::evaluate`]; recorded in `network.json` [default: off; a trainer's: its config's].
    pub test_time_flip: bool,
    network: NetworkConfig,
    vs: nn::VarStore,
    model: Box<dyn Classifier>,
}

impl std::fmt::Debug for TrainedNetwork {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "TrainedNetwork({}, {:?})", self.kind, self.device)
    }
}

impl TrainedNetwork {
    /// A freshly built, untrained `network` on `device` (initialised from torch's global
    /// generator: seed it first with `tch::manual_seed` for a repeatable start).
    pub fn untrained(network: NetworkConfig, device: Device) -> Result<TrainedNetwork> {
        let vs = nn::VarStore::new(device);
        let model = network.build(&vs.root())?;
        Ok(TrainedNetwork::from_parts(network, vs, model))
    }

    /// The network saved in a checkpoint: `path` is a checkpoint folder (its
    /// `best.safetensors` is loaded) or a weights file. The network is named by the
    /// `network.json` beside the weights (else by the `model` of `result.json` or `state.json`).
    /// A missing folder or file, a file that names no network, or weights that do not fit are
    /// errors naming the file.
    pub fn load(path: &Path, device: Device) -> Result<TrainedNetwork> {
        let weights = weights_file(path)?;
        let file = NetworkFile::find(&weights)?;
        let source = weights.with_file_name(super::checkpoint::NETWORK);
        let mut net = TrainedNetwork::untrained(file.network(&source)?, device)?;
        net.test_time_flip = file.test_time_flip;
        net.load_weights(&weights)?;
        Ok(net)
    }

    /// Wraps a network built from `network` under `vs`.
    pub(crate) fn from_parts(
        network: NetworkConfig,
        vs: nn::VarStore,
        model: Box<dyn Classifier>,
    ) -> TrainedNetwork {
        let kind = network.kind();
        TrainedNetwork {
            kind,
            device: vs.device(),
            batch_size: kind.spec().eval_batch_size,
            bf16: false,
            channels_last: kind.spec().channels_last,
            test_time_flip: false,
            network,
            vs,
            model,
        }
    }

    /// What the network was built from.
    pub fn network_config(&self) -> &NetworkConfig {
        &self.network
    }

    /// What `network.json` holds for this network.
    pub fn network_file(&self) -> NetworkFile {
        NetworkFile::of(&self.network, self.test_time_flip)
    }

    /// Copies of every variable (weights and batch-norm statistics), by name.
    pub fn copy_of_weights(&self) -> Vec<(String, Tensor)> {
        self.vs
            .variables()
            .into_iter()
            .map(|(n, t)| (n, t.detach().copy()))
            .collect()
    }

    /// Copies `weights` (as [`TrainedNetwork::copy_of_weights`] gives them) into the variables
    /// of the same names.
    pub fn set_weights(&mut self, weights: &[(String, Tensor)]) -> Result<()> {
        let vars = self.vs.variables();
        tch::no_grad(|| -> Result<()> {
            for (n, w) in weights {
                if let Some(v) = vars.get(n) {
                    v.shallow_clone().f_copy_(w)?;
                }
            }
            Ok(())
        })
    }

    /// Replaces the weights with those of `path`.
    pub fn load_weights(&mut self, path: &Path) -> Result<()> {
        if !path.is_file() {
            return Err(Error::NotFound {
                path: path.to_path_buf(),
                what: "weights file",
            });
        }
        self.vs.load(path).map_err(|e| {
            Error::data(
                path,
                format!("weights of a {} network", self.kind),
                e.to_string(),
            )
        })
    }

    /// Sets the precision of forward passes (bf16 autocast where `precision` resolves to it on
    /// this network's device).
    pub fn set_precision(&mut self, precision: Precision) {
        self.bf16 = precision.resolve(self.device).0;
    }

    /// The network.
    pub fn model(&self) -> &dyn Classifier {
        self.model.as_ref()
    }

    /// The variables (to save, load or inspect).
    pub fn var_store(&self) -> &nn::VarStore {
        &self.vs
    }

    /// Layers, output shapes and trainable parameters, like Keras's `model.summary()`.
    pub fn summary(&self) -> Result<ModelSummary> {
        models::summary(self.model(), self.device)
    }

    /// Runs `work` with the 4-D variables in channels-last order when `channels_last` is set
    /// and they are on the CPU, then puts back the very tensors they had, also when `work` fails.
    /// Variables already in channels-last order (inside a [`super::Trainer`]'s `fit`) are left as
    /// they are. Same results in less time (measured with `fmnist evaluate`: the README's
    /// Performance section).
    fn in_inference_layout<T>(&self, work: impl FnOnce() -> Result<T>) -> Result<T> {
        if !self.channels_last || self.device != Device::Cpu {
            return work();
        }
        let kernels: Vec<Tensor> = self
            .vs
            .variables()
            .into_values()
            .filter(|v| v.dim() == 4)
            .collect();
        if kernels.iter().any(is_channels_last) {
            return work();
        }
        let originals: Vec<Tensor> = kernels.iter().map(|v| v.detach()).collect();
        let set_data = |data: &[Tensor]| -> Result<()> {
            tch::no_grad(|| {
                for (v, d) in kernels.iter().zip(data) {
                    v.shallow_clone().f_set_data(d)?;
                }
                Ok(())
            })
        };
        let channels_last: Vec<Tensor> = originals.iter().map(to_channels_last).collect();
        set_data(&channels_last)?;
        let result = work();
        set_data(&originals)?;
        result
    }

    /// Calls `f(start, batch)` for the batches of `batch_size` rows of `x` (`[N, …]`, moved to
    /// the device), in order, in evaluation mode: no gradients, the network's inference layout
    /// and its precision.
    fn for_each_batch(&self, x: &Tensor, mut f: impl FnMut(i64, &Tensor)) -> Result<()> {
        let n = x.size().first().copied().unwrap_or(0);
        let bs = self.batch_size.max(1) as i64;
        self.in_inference_layout(|| {
            tch::no_grad(|| {
                let _autocast = Autocast::enter(self.device, self.bf16);
                let mut i = 0;
                while i < n {
                    let len = bs.min(n - i);
                    f(i, &x.narrow(0, i, len).to_device(self.device));
                    i += len;
                }
            });
            Ok(())
        })
    }

    /// Runs `f` on `set` in batches (see [`Self::for_each_batch`]) and concatenates the results
    /// on the CPU.
    fn map_batches(&self, set: &ImageSet, f: impl Fn(&Tensor) -> Tensor) -> Result<Tensor> {
        if set.is_empty() {
            return Err(Error::param("set", "no image to run the network on"));
        }
        let mut out = Vec::new();
        self.for_each_batch(&set.images_tensor(), |_, xb| {
            out.push(
                f(xb)
                    .to_device(Device::Cpu)
                    .to_kind(Kind::Float)
                    .contiguous(),
            );
        })?;
        Ok(Tensor::cat(&out, 0))
    }

    /// Class probabilities `[B, 10]` (fp32, on the device) of a batch `xb` `[B, …]`: the
    /// softmax of the logits, or with `test_time_flip` the mean of the image's and its mirror
    /// image's.
    fn batch_probabilities(&self, xb: &Tensor) -> Tensor {
        let p = |x: &Tensor| {
            self.model
                .forward_t(x, false)
                .to_kind(Kind::Float)
                .softmax(-1, Kind::Float)
        };
        // Only images flip: a head on trunk features (`[B, D]`) scores them as they are.
        if self.test_time_flip && xb.dim() == 4 {
            (p(xb) + p(&xb.flip([-1]))) * 0.5
        } else {
            p(xb)
        }
    }

    /// Class probabilities `[N, 10]` (on the CPU) for `set`.
    pub fn predict_proba(&self, set: &ImageSet) -> Result<Tensor> {
        self.map_batches(set, |xb| self.batch_probabilities(xb))
    }

    /// Predictions with probabilities for `set`.
    pub fn predict(&self, set: &ImageSet) -> Result<Predictions> {
        Predictions::from_probabilities(&set.labels, &self.predict_proba(set)?)
    }

    /// The embeddings of `set` (the output of the layer before the classifier): `[N, D]` on
    /// the CPU.
    pub fn embed(&self, set: &ImageSet) -> Result<Tensor> {
        self.map_batches(set, |xb| self.model.embedding(xb, false))
    }

    /// Every named intermediate output for image `index` of `set` (`[1, …]` each, on the CPU),
    /// in order, ending with the logits.
    pub fn activations(&self, set: &ImageSet, index: usize) -> Result<Vec<(String, Tensor)>> {
        let one = set.select(&[index])?;
        let x = one.images_tensor().to_device(self.device);
        let acts = tch::no_grad(|| self.model.activations(&x, false));
        Ok(acts
            .into_iter()
            .map(|(n, t)| (n, t.to_device(Device::Cpu)))
            .collect())
    }

    /// Mean cross-entropy and accuracy on `set` (no L2 term), of the probabilities
    /// [`Self::predict_proba`] gives (with `test_time_flip`: of the averaged ones).
    pub fn evaluate(&self, set: &ImageSet) -> Result<Evaluation> {
        if set.is_empty() {
            return Err(Error::param("set", "cannot evaluate on an empty set"));
        }
        self.evaluate_tensors(&set.images_tensor(), &set.labels_tensor())
    }

    /// Mean cross-entropy and accuracy of inputs `x` (what the network takes, `[N, …]`) with
    /// labels `y` (`[N]`).
    pub fn evaluate_tensors(&self, x: &Tensor, y: &Tensor) -> Result<Evaluation> {
        let n = x.size().first().copied().unwrap_or(0);
        if n == 0 || y.size() != [n] {
            return Err(Error::param(
                "set",
                format!(
                    "cannot evaluate {:?} inputs with {:?} labels",
                    x.size(),
                    y.size()
                ),
            ));
        }
        let (mut loss, mut correct) = (0.0f64, 0i64);
        let mut confusion = [[0u64; NUM_CLASSES]; NUM_CLASSES];
        self.for_each_batch(x, |i, xb| {
            let len = xb.size()[0];
            let yb = y.narrow(0, i, len).to_device(self.device);
            let scores = if self.test_time_flip && xb.dim() == 4 {
                let log_p = self.batch_probabilities(xb).clamp_min(1e-12).log();
                loss += log_p.nll_loss(&yb).double_value(&[]) * len as f64;
                log_p
            } else {
                let logits = self.model.forward_t(xb, false).to_kind(Kind::Float);
                loss += logits.cross_entropy_for_logits(&yb).double_value(&[]) * len as f64;
                logits
            };
            let predicted = scores.argmax(1, false);
            correct += predicted.eq_tensor(&yb).sum(Kind::Int64).int64_value(&[]);
            let on_cpu =
                |t: &Tensor| Vec::<i64>::try_from(t.to_kind(Kind::Int64).to_device(Device::Cpu));
            if let (Ok(truth), Ok(predicted)) = (on_cpu(&yb), on_cpu(&predicted)) {
                let class = |c: i64| usize::try_from(c).ok().filter(|&c| c < NUM_CLASSES);
                for (t, p) in truth.into_iter().zip(predicted) {
                    if let (Some(t), Some(p)) = (class(t), class(p)) {
                        confusion[t][p] += 1;
                    }
                }
            }
        })?;
        Ok(Evaluation {
            loss: loss / n as f64,
            accuracy: correct as f64 / n as f64,
            images: n as usize,
            confusion,
        })
    }

    /// Writes the weights to `path` as safetensors (atomically, contiguous copies).
    pub fn save_weights(&self, path: &Path) -> Result<()> {
        super::checkpoint::write_tensors_atomic(
            path,
            &self.vs.variables().into_iter().collect::<Vec<_>>(),
        )
    }
}

/// The weights file of a checkpoint `path`: the folder's `best.safetensors`, or `path` itself.
/// A path that does not exist is an error naming it.
fn weights_file(path: &Path) -> Result<std::path::PathBuf> {
    if path.is_dir() {
        return Ok(super::checkpoint::CheckpointDir(path.to_path_buf()).best());
    }
    if !path.exists() {
        return Err(Error::NotFound {
            path: path.to_path_buf(),
            what: "checkpoint folder or weights file",
        });
    }
    Ok(path.to_path_buf())
}
