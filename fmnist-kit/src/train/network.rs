//! A trained network for inference: its kind, variables and device, and nothing of training.
//! Load one from a checkpoint with [`TrainedNetwork::load`], or take the one a
//! [`super::Trainer`] holds. Evaluation, feature maps, Grad-CAM and t-SNE of learned features
//! go through it and never build an optimiser.

use std::path::Path;

use serde::{Deserialize, Serialize};
use tch::{nn, Device, Kind, Tensor};

use super::checkpoint::NetworkFile;
use super::precision::{Autocast, Precision};
use crate::data::ImageSet;
use crate::error::{Error, Result};
use crate::metrics::Predictions;
use crate::models::backbone::is_channels_last;
use crate::models::{self, to_channels_last, Classifier, ModelKind, ModelSummary};

/// Loss and accuracy on a labelled set.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Evaluation {
    pub loss: f64,
    pub accuracy: f64,
    pub images: usize,
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
    vs: nn::VarStore,
    model: Box<dyn Classifier>,
}

impl std::fmt::Debug for TrainedNetwork {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "TrainedNetwork({}, {:?})", self.kind, self.device)
    }
}

impl TrainedNetwork {
    /// A freshly initialised network of `kind` on `device` (seeded by the caller's
    /// `tch::manual_seed`).
    pub fn new(kind: ModelKind, device: Device) -> Result<TrainedNetwork> {
        let vs = nn::VarStore::new(device);
        let model = kind.build(&vs.root())?;
        Ok(TrainedNetwork::from_parts(vs, model))
    }

    /// Wraps a network the caller built under `vs` (e.g. a `Cnn4` with another config).
    pub fn from_parts(vs: nn::VarStore, model: Box<dyn Classifier>) -> TrainedNetwork {
        TrainedNetwork {
            kind: model.kind(),
            device: vs.device(),
            batch_size: model.kind().spec().eval_batch_size,
            bf16: false,
            channels_last: model.kind().spec().channels_last,
            vs,
            model,
        }
    }

    /// A freshly initialised network of `kind` built from `config` (as [`Classifier::config`]
    /// returns it) on `device`.
    pub fn with_config(
        kind: ModelKind,
        config: &serde_json::Value,
        device: Device,
    ) -> Result<TrainedNetwork> {
        let vs = nn::VarStore::new(device);
        let model = kind.build_with(&vs.root(), config)?;
        Ok(TrainedNetwork::from_parts(vs, model))
    }

    /// The network of `kind` with the weights of `checkpoint` (e.g. `best.safetensors`), built
    /// with the configuration of the `network.json` beside it when there is one (else the
    /// network's defaults). A missing file, a `network.json` of another network, or weights that
    /// do not fit the network are errors naming the file.
    pub fn load(kind: ModelKind, checkpoint: &Path, device: Device) -> Result<TrainedNetwork> {
        let config = match NetworkFile::beside(checkpoint)? {
            Some(n) if n.model != kind => {
                let dir = checkpoint.parent().unwrap_or(Path::new("."));
                return Err(Error::data(
                    dir.join(super::checkpoint::NETWORK),
                    "model",
                    format!("describes a {} network, not a {kind}", n.model),
                ));
            }
            Some(n) => n.config,
            None => serde_json::Value::Null,
        };
        let mut net = TrainedNetwork::with_config(kind, &config, device)?;
        net.load_weights(checkpoint)?;
        Ok(net)
    }

    /// The network whose weights are in `checkpoint`, named by the files beside it
    /// (`network.json`, else `result.json` or `state.json`; see [`NetworkFile::find`]).
    pub fn open(checkpoint: &Path, device: Device) -> Result<TrainedNetwork> {
        let network = NetworkFile::find(checkpoint)?;
        TrainedNetwork::load(network.model, checkpoint, device)
    }

    /// What `network.json` holds for this network.
    pub fn network_file(&self) -> NetworkFile {
        NetworkFile {
            model: self.kind,
            config: self.model.config(),
        }
    }

    /// Replaces the weights with those of `path`.
    pub fn load_weights(&mut self, path: &Path) -> Result<()> {
        if !path.is_file() {
            return Err(Error::io(
                path,
                std::io::Error::new(std::io::ErrorKind::NotFound, "no such checkpoint"),
            ));
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

    /// Class probabilities `[N, 10]` (on the CPU) for `set`.
    pub fn predict_proba(&self, set: &ImageSet) -> Result<Tensor> {
        self.map_batches(set, |xb| {
            self.model
                .forward_t(xb, false)
                .to_kind(Kind::Float)
                .softmax(-1, Kind::Float)
        })
    }

    /// Predictions with probabilities for `set`.
    pub fn predict(&self, set: &ImageSet) -> Result<Predictions> {
        Predictions::from_probabilities(&set.labels, &self.predict_proba(set)?)
    }

    /// The learned features (output of the layer before the classifier) of `set`: `[N, D]` on
    /// the CPU.
    pub fn features(&self, set: &ImageSet) -> Result<Tensor> {
        self.map_batches(set, |xb| self.model.features(xb, false))
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

    /// Mean cross-entropy and accuracy on `set` (no L2 term).
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
        self.for_each_batch(x, |i, xb| {
            let len = xb.size()[0];
            let yb = y.narrow(0, i, len).to_device(self.device);
            let logits = self.model.forward_t(xb, false).to_kind(Kind::Float);
            loss += logits.cross_entropy_for_logits(&yb).double_value(&[]) * len as f64;
            correct += logits
                .argmax(1, false)
                .eq_tensor(&yb)
                .sum(Kind::Int64)
                .int64_value(&[]);
        })?;
        Ok(Evaluation {
            loss: loss / n as f64,
            accuracy: correct as f64 / n as f64,
            images: n as usize,
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
