//! The optimisers: Adam and SGD (with momentum, optionally Nesterov's) over the trainable
//! variables of a network, with the model's L2 penalty and decoupled weight decay folded into
//! the update. On the CPU, Adam runs as one fused pass per variable ([`super::fused`]); other
//! variables (a GPU, another dtype or layout) take the same update written with libtorch's
//! tensor operations.

use std::collections::HashMap;
use std::path::Path;

use tch::{nn, Tensor};

use super::checkpoint::write_tensors_atomic;
use super::config::{OptimizerKind, TrainConfig};
use super::fused;
use crate::error::{Error, Result};
pub(crate) use crate::models::to_channels_last;
use crate::models::Classifier;

/// The state of the optimiser over one network's trainable variables: both moments of every
/// variable (Adam's `m` and `v`; SGD's momentum in `m`), and the L2 coefficient of each.
pub(crate) struct Optimizer {
    /// `(variable name, first moment, second moment)`, sorted by name.
    pub moments: Vec<(String, Tensor, Tensor)>,
    /// The L2 coefficient of each variable of `moments` (0 where the model has none): the
    /// penalty's gradient is added inside the step instead of through the loss.
    pub l2_coefficients: Vec<f64>,
    /// libtorch's own optimiser over the same variables, used only for its `zero_grad`, which
    /// drops the gradients (set to None) instead of zeroing them: the next backward then writes
    /// fresh gradients instead of adding into zeroed ones (two fewer passes over the weights).
    grad_reset: tch::COptimizer,
}

/// What one step needs besides the gradients.
#[derive(Clone, Copy, Debug)]
pub(crate) struct StepSettings {
    pub kind: OptimizerKind,
    /// The learning rate of this step.
    pub learning_rate: f64,
    /// Decoupled weight decay on the kernels (variables of rank 2 or more).
    pub weight_decay: f64,
    /// Add the model's L2 penalty's gradient.
    pub model_l2: bool,
    /// 1-based step count (Adam's bias correction).
    pub step: i64,
}

impl StepSettings {
    pub fn new(config: &TrainConfig, learning_rate: f64, step: i64) -> StepSettings {
        StepSettings {
            kind: config.optimizer,
            learning_rate,
            weight_decay: config.weight_decay,
            model_l2: config.model_l2,
            step,
        }
    }
}

impl Optimizer {
    /// Zero moments for every trainable variable of `vs`, and the L2 coefficients `model` gives.
    pub fn new(vs: &nn::VarStore, model: &dyn Classifier) -> Result<Optimizer> {
        let mut names: Vec<(String, Tensor)> = vs
            .variables()
            .into_iter()
            .filter(|(_, t)| t.requires_grad())
            .collect();
        names.sort_by(|a, b| a.0.cmp(&b.0));
        let l2_kernels = model.l2_kernels();
        let l2_coefficients = names
            .iter()
            .map(|(_, t)| {
                l2_kernels
                    .iter()
                    .find(|(k, _)| k.data_ptr() == t.data_ptr())
                    .map_or(0.0, |(_, c)| *c)
            })
            .collect();
        let mut grad_reset = tch::COptimizer::sgd(0.0, 0.0, 0.0, 0.0, false)?;
        for (_, t) in &names {
            grad_reset.add_parameters(t, 0)?;
        }
        let moments = names
            .into_iter()
            .map(|(n, t)| (n, t.zeros_like(), t.zeros_like()))
            .collect();
        Ok(Optimizer {
            moments,
            l2_coefficients,
            grad_reset,
        })
    }

    /// Drops every gradient (the next backward writes fresh ones).
    pub fn zero_grad(&mut self) -> Result<()> {
        Ok(self.grad_reset.zero_grad()?)
    }

    /// Updates every variable of `vs` that has a gradient.
    pub fn step(&self, vs: &nn::VarStore, s: StepSettings) -> Result<()> {
        let t = s.step as f64;
        let lr = s.learning_rate;
        let vars = vs.variables();
        // (index into `moments`, weight, gradient) of every variable that has a gradient.
        let mut work = Vec::with_capacity(self.moments.len());
        for (i, (name, _, _)) in self.moments.iter().enumerate() {
            let Some(p) = vars.get(name) else { continue };
            let g = p.grad();
            if g.defined() {
                work.push((i, p.shallow_clone(), g));
            }
        }
        tch::no_grad(|| -> Result<()> {
            let mut fusable = Vec::with_capacity(work.len());
            for (i, p, g) in &work {
                let (_, m, v) = &self.moments[*i];
                let l2 = if s.model_l2 {
                    self.l2_coefficients[*i]
                } else {
                    0.0
                };
                let decay = if s.weight_decay > 0.0 && p.dim() > 1 {
                    1.0 - lr * s.weight_decay
                } else {
                    1.0
                };
                match s.kind {
                    OptimizerKind::Adam { beta1, beta2, eps } => {
                        let (bc1, bc2) = (1.0 - beta1.powf(t), 1.0 - beta2.powf(t));
                        let slot = fused::AdamSlot {
                            weight: p,
                            grad: g,
                            m,
                            v,
                            step: fused::AdamStep {
                                beta1: beta1 as f32,
                                beta2: beta2 as f32,
                                eps: eps as f32,
                                step_size: (lr / bc1) as f32,
                                inv_sqrt_bc2: (1.0 / bc2.sqrt()) as f32,
                                decay: decay as f32,
                                l2_grad: (2.0 * l2) as f32,
                            },
                        };
                        if slot.fusable() {
                            fusable.push(slot);
                        } else {
                            adam_with_tensor_ops(&slot)?;
                        }
                    }
                    OptimizerKind::Sgd { momentum, nesterov } => {
                        let mut p = p.shallow_clone();
                        let g = if l2 > 0.0 {
                            g + &p * (2.0 * l2)
                        } else {
                            g.shallow_clone()
                        };
                        if decay != 1.0 {
                            let _ = p.f_mul_scalar_(decay)?;
                        }
                        if momentum > 0.0 {
                            let mut m = m.shallow_clone();
                            let _ = m.f_mul_scalar_(momentum)?.f_add_(&g)?;
                            let step = if nesterov { &g + &m * momentum } else { m };
                            let _ = p.f_sub_(&(step * lr))?;
                        } else {
                            let _ = p.f_sub_(&(&g * lr))?;
                        }
                    }
                }
            }
            fused::adam_step(&fusable);
            Ok(())
        })
    }

    /// Puts every 4-D variable of `vs` (`[O, I, kh, kw]` kernels, trainable or frozen) and the
    /// moments of the trainable ones in channels-last order (same shape, memory ordered
    /// `[O, kh, kw, I]`), or back to the default contiguous order.
    pub fn set_channels_last(&mut self, vs: &nn::VarStore, on: bool) -> Result<()> {
        let relayout = |t: &Tensor| {
            if on {
                to_channels_last(t)
            } else {
                t.contiguous()
            }
        };
        tch::no_grad(|| -> Result<()> {
            for (_, p) in vs.variables() {
                if p.dim() == 4 {
                    p.shallow_clone().f_set_data(&relayout(&p.detach()))?;
                }
            }
            for (_, m, v) in &mut self.moments {
                if m.dim() == 4 {
                    *m = relayout(m);
                    *v = relayout(v);
                }
            }
            Ok(())
        })
    }

    /// Copies of both moments of every variable, in order (to roll an epoch back).
    pub fn copy_of_moments(&self) -> Vec<(Tensor, Tensor)> {
        self.moments
            .iter()
            .map(|(_, m, v)| (m.detach().copy(), v.detach().copy()))
            .collect()
    }

    /// Puts back moments taken by [`Optimizer::copy_of_moments`].
    pub fn set_moments(&mut self, saved: &[(Tensor, Tensor)]) -> Result<()> {
        tch::no_grad(|| -> Result<()> {
            for ((_, m, v), (sm, sv)) in self.moments.iter_mut().zip(saved) {
                m.f_copy_(sm)?;
                v.f_copy_(sv)?;
            }
            Ok(())
        })
    }

    /// Writes the moments as `m/<name>` and `v/<name>` to `path` (atomically).
    pub fn save(&self, path: &Path) -> Result<()> {
        let mut named: Vec<(String, Tensor)> = Vec::with_capacity(2 * self.moments.len());
        for (n, m, v) in &self.moments {
            named.push((format!("m/{n}"), m.shallow_clone()));
            named.push((format!("v/{n}"), v.shallow_clone()));
        }
        write_tensors_atomic(path, &named)
    }

    /// Reads moments written by [`Optimizer::save`]; a variable without saved moments is an
    /// error naming the file and the variable.
    pub fn load(&mut self, path: &Path) -> Result<()> {
        let saved: HashMap<String, Tensor> = Tensor::read_safetensors(path)
            .map_err(|e| Error::data(path, "safetensors", e.to_string()))?
            .into_iter()
            .collect();
        tch::no_grad(|| -> Result<()> {
            for (n, m, v) in &mut self.moments {
                let (Some(sm), Some(sv)) =
                    (saved.get(&format!("m/{n}")), saved.get(&format!("v/{n}")))
                else {
                    return Err(Error::data(
                        path,
                        n.clone(),
                        "missing optimiser state for this variable",
                    ));
                };
                m.f_copy_(sm)
                    .map_err(|e| Error::data(path, n.clone(), e.to_string()))?;
                v.f_copy_(sv)
                    .map_err(|e| Error::data(path, n.clone(), e.to_string()))?;
            }
            Ok(())
        })
    }
}

/// The Adam update of [`fused::adam_step`] written with libtorch operations, for variables the
/// fused path cannot take (a GPU, another dtype or layout).
pub(crate) fn adam_with_tensor_ops(s: &fused::AdamSlot<'_>) -> Result<()> {
    let st = s.step;
    let (mut p, mut m, mut v) = (
        s.weight.shallow_clone(),
        s.m.shallow_clone(),
        s.v.shallow_clone(),
    );
    let g = if st.l2_grad != 0.0 {
        s.grad + &p * f64::from(st.l2_grad)
    } else {
        s.grad.shallow_clone()
    };
    if st.decay != 1.0 {
        let _ = p.f_mul_scalar_(f64::from(st.decay))?;
    }
    let _ = m.f_lerp_(&g, 1.0 - f64::from(st.beta1))?;
    let _ = v.f_mul_scalar_(f64::from(st.beta2))?;
    let _ = v.f_addcmul_(&g, &(&g * (1.0 - f64::from(st.beta2))))?;
    if st.step_size == 0.0 {
        // A zero learning rate (the end of a cosine schedule) moves nothing; the division
        // below would turn 0 · ∞ into NaN where v is 0.
        return Ok(());
    }
    // p -= step_size · m / d with d = sqrt(v) / sqrt(bc2) + eps, in place with one temporary:
    // addcdiv adds m / d' with d' = -d / step_size.
    let mut d = v.f_sqrt()?;
    let step_size = f64::from(st.step_size);
    let _ = d.f_mul_scalar_(-f64::from(st.inv_sqrt_bc2) / step_size)?;
    let _ = d.f_add_scalar_(-f64::from(st.eps) / step_size)?;
    let _ = p.f_addcdiv_(&m, &d)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::{Device, Kind};

    #[test]
    fn the_fused_adam_step_equals_the_tensor_operations() {
        tch::manual_seed(3);
        // A contiguous matrix, a channels-last kernel and a vector large enough to be split
        // across threads; weights, gradients and moments as after a few steps.
        let shapes: [&[i64]; 3] = [&[300, 200], &[8, 16, 3, 3], &[70_001]];
        for shape in shapes {
            let fresh = |scale: f64| {
                let t = Tensor::randn(shape, (Kind::Float, Device::Cpu)) * scale;
                if shape.len() == 4 {
                    to_channels_last(&t)
                } else {
                    t
                }
            };
            let (w, m) = (fresh(1.0), fresh(0.01));
            let v = fresh(0.01).square();
            let (w2, m2, v2) = (w.copy(), m.copy(), v.copy());
            for step in 1..=3 {
                let g = fresh(0.1);
                let (bc1, bc2) = (1.0 - 0.9f64.powi(step), 1.0 - 0.999f64.powi(step));
                let params = fused::AdamStep {
                    beta1: 0.9,
                    beta2: 0.999,
                    eps: 1e-7,
                    step_size: (1e-3 / bc1) as f32,
                    inv_sqrt_bc2: (1.0 / bc2.sqrt()) as f32,
                    decay: 1.0 - 1e-3 * 0.05,
                    l2_grad: 2.0 * 0.01,
                };
                let fused_slot = fused::AdamSlot {
                    weight: &w,
                    grad: &g,
                    m: &m,
                    v: &v,
                    step: params,
                };
                assert!(fused_slot.fusable(), "{shape:?}");
                fused::adam_step(&[fused_slot]);
                adam_with_tensor_ops(&fused::AdamSlot {
                    weight: &w2,
                    grad: &g,
                    m: &m2,
                    v: &v2,
                    step: params,
                })
                .unwrap();
            }
            for (a, b) in [(&w, &w2), (&m, &m2), (&v, &v2)] {
                let diff = (a - b).abs().max().double_value(&[]);
                assert!(diff < 1e-6, "{shape:?}: largest difference {diff}");
            }
            assert_eq!(w.stride(), w2.stride(), "the layout is kept");
        }
        // A transposed view is not one dense block in the same layout as its gradient.
        let t = Tensor::zeros([4, 6], (Kind::Float, Device::Cpu));
        let (tt, g) = (t.tr(), Tensor::zeros([6, 4], (Kind::Float, Device::Cpu)));
        let slot = fused::AdamSlot {
            weight: &tt,
            grad: &g,
            m: &g,
            v: &g,
            step: fused::AdamStep {
                beta1: 0.9,
                beta2: 0.999,
                eps: 1e-7,
                step_size: 1e-3,
                inv_sqrt_bc2: 1.0,
                decay: 1.0,
                l2_grad: 0.0,
            },
        };
        assert!(!slot.fusable());
    }

    #[test]
    fn a_zero_learning_rate_moves_nothing_and_one_by_one_kernels_take_the_fused_path() {
        // The end of a cosine schedule: step size 0, and moments that are still 0.
        let w = Tensor::ones([4, 3], (Kind::Float, Device::Cpu));
        let zero = Tensor::zeros([4, 3], (Kind::Float, Device::Cpu));
        let step = fused::AdamStep {
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-7,
            step_size: 0.0,
            inv_sqrt_bc2: 1.0,
            decay: 1.0,
            l2_grad: 0.0,
        };
        let (m, v) = (zero.copy(), zero.copy());
        adam_with_tensor_ops(&fused::AdamSlot {
            weight: &w,
            grad: &zero,
            m: &m,
            v: &v,
            step,
        })
        .unwrap();
        assert!(w.equal(&Tensor::ones([4, 3], (Kind::Float, Device::Cpu))));
        // A channels-last 1×1 kernel and a gradient whose strides differ only where the size
        // is 1 lie the same way in memory.
        let k = to_channels_last(&Tensor::randn([8, 5, 1, 1], (Kind::Float, Device::Cpu)));
        let g = Tensor::randn([8, 5, 1, 1], (Kind::Float, Device::Cpu)).as_strided(
            [8, 5, 1, 1].as_slice(),
            [5, 1, 5, 5].as_slice(),
            None,
        );
        assert_ne!(k.stride(), g.stride());
        let (m, v) = (k.zeros_like(), k.zeros_like());
        let slot = fused::AdamSlot {
            weight: &k,
            grad: &g,
            m: &m,
            v: &v,
            step: fused::AdamStep {
                step_size: 1e-3,
                ..step
            },
        };
        assert!(slot.fusable());
    }
}
