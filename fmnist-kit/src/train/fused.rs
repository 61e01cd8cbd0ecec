//! A fused Adam step for CPU `f32` variables: one pass over weight, gradient and both moments
//! per step, with the L2 penalty's gradient and the decoupled weight decay folded in.
//!
//! libtorch's tensor operations need eight passes and two temporaries for the same update (and
//! two more passes for an L2 penalty in the loss); for the 11-million-weight ResNet on two cores
//! that memory traffic is a large share of a training step. Each element is independent, so the
//! work is split evenly across libtorch's intra-op threads and the result does not depend on how
//! many there are.

use tch::{Device, Kind, Tensor};

/// The per-step constants of one variable's Adam update.
#[derive(Clone, Copy, Debug)]
pub(crate) struct AdamStep {
    pub beta1: f32,
    pub beta2: f32,
    pub eps: f32,
    /// `lr / (1 - beta1^t)`.
    pub step_size: f32,
    /// `1 / sqrt(1 - beta2^t)`.
    pub inv_sqrt_bc2: f32,
    /// Multiplies the weight before the update: `1 - lr · weight_decay` (1 without decay).
    pub decay: f32,
    /// `2 · coefficient` of the L2 penalty `coefficient · Σ w²` (0 without one).
    pub l2_grad: f32,
}

/// One variable to update: weight, gradient, first and second moments.
pub(crate) struct AdamSlot<'a> {
    pub weight: &'a Tensor,
    pub grad: &'a Tensor,
    pub m: &'a Tensor,
    pub v: &'a Tensor,
    pub step: AdamStep,
}

impl AdamSlot<'_> {
    /// True when the fused path can update this variable in place: all four tensors on the
    /// CPU, `f32`, of one shape and one memory layout, and dense in memory (contiguous in some
    /// order of dimensions, e.g. channels-last), so that they can be walked as flat buffers.
    pub fn fusable(&self) -> bool {
        let (size, stride) = (self.weight.size(), self.weight.stride());
        // Strides of size-1 dimensions do not change where elements lie in memory (a 1×1
        // kernel's gradient may carry other ones than the kernel), so they are not compared.
        let same_layout = |t: &Tensor| {
            t.stride()
                .iter()
                .zip(&stride)
                .zip(&size)
                .all(|((a, b), &n)| n == 1 || a == b)
        };
        dense(&size, &stride)
            && [self.weight, self.grad, self.m, self.v].iter().all(|t| {
                t.device() == Device::Cpu
                    && t.kind() == Kind::Float
                    && t.size() == size
                    && same_layout(t)
            })
    }
}

/// True when a tensor of `size` and `stride` fills one block of memory with no gaps or overlap.
fn dense(size: &[i64], stride: &[i64]) -> bool {
    let mut dims: Vec<(i64, i64)> = stride
        .iter()
        .zip(size)
        .filter(|(_, &n)| n != 1)
        .map(|(&s, &n)| (s, n))
        .collect();
    dims.sort_unstable();
    let mut expected = 1;
    for (s, n) in dims {
        if s != expected {
            return false;
        }
        expected *= n;
    }
    true
}

/// A raw view of one slot's memory that can cross into a worker thread.
#[derive(Clone, Copy)]
struct RawSlot {
    weight: *mut f32,
    grad: *const f32,
    m: *mut f32,
    v: *mut f32,
    len: usize,
    step: AdamStep,
}

// SAFETY: the pointers refer to tensors that outlive the scoped threads, and each thread only
// touches its own disjoint index range of them.
unsafe impl Send for RawSlot {}

/// Applies Adam to every slot; every slot must be [`AdamSlot::fusable`], and no two tensors
/// of all the slots may share memory.
pub(crate) fn adam_step(slots: &[AdamSlot<'_>]) {
    let raw: Vec<RawSlot> = slots
        .iter()
        .map(|s| RawSlot {
            weight: s.weight.data_ptr() as *mut f32,
            grad: s.grad.data_ptr() as *const f32,
            m: s.m.data_ptr() as *mut f32,
            v: s.v.data_ptr() as *mut f32,
            len: s.weight.numel(),
            step: s.step,
        })
        .collect();
    let total: usize = raw.iter().map(|r| r.len).sum();
    let threads = (tch::get_num_threads().max(1) as usize).min(total.div_ceil(16_384).max(1));
    if threads == 1 {
        for r in &raw {
            // SAFETY: the slot's four tensors are contiguous f32 buffers of `len` elements
            // (checked by `fusable`), distinct, and nothing else uses them during the step.
            unsafe { update_range(r, 0, r.len) };
        }
        return;
    }
    std::thread::scope(|scope| {
        for k in 0..threads {
            let raw = raw.clone();
            scope.spawn(move || {
                for r in &raw {
                    let (lo, hi) = (r.len * k / threads, r.len * (k + 1) / threads);
                    // SAFETY: as above; thread k alone owns indices lo..hi of every slot.
                    unsafe { update_range(r, lo, hi) };
                }
            });
        }
    });
}

/// # Safety
/// `r`'s pointers must be valid for `r.len` elements and `lo..hi` not touched by anyone else.
unsafe fn update_range(r: &RawSlot, lo: usize, hi: usize) {
    let n = hi - lo;
    let w = std::slice::from_raw_parts_mut(r.weight.add(lo), n);
    let g = std::slice::from_raw_parts(r.grad.add(lo), n);
    let m = std::slice::from_raw_parts_mut(r.m.add(lo), n);
    let v = std::slice::from_raw_parts_mut(r.v.add(lo), n);
    let s = r.step;
    let (one_minus_b1, one_minus_b2) = (1.0 - s.beta1, 1.0 - s.beta2);
    for (((w, &g), m), v) in w.iter_mut().zip(g).zip(m.iter_mut()).zip(v.iter_mut()) {
        let g = g + s.l2_grad * *w;
        *m += one_minus_b1 * (g - *m);
        *v = s.beta2 * *v + one_minus_b2 * g * g;
        let denom = v.sqrt() * s.inv_sqrt_bc2 + s.eps;
        *w = *w * s.decay - s.step_size * *m / denom;
    }
}
