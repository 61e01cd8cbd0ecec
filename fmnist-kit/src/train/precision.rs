//! Mixed precision: forward passes in bfloat16 under libtorch's autocast (matrix products and
//! convolutions in bf16, reductions and the loss in fp32, fp32 master weights updated by the
//! optimiser), on the GPU and on CPUs with native bf16. tch reaches only CUDA's autocast, so
//! the kit compiles a few lines of C++ against the same libtorch (`csrc/torch_shim.cpp`).
//!
//! [`Precision::Auto`] picks bf16 on CUDA, and on the CPU only where bf16 measured faster: with
//! AMX. On AVX2-only CPUs libtorch emulates bf16 and training is several times slower; on an
//! AVX-512-bf16 CPU without AMX (this project's Intel Xeon, measured 2026-11-30) bf16 autocast
//! was slower than fp32 too, in the kit and in PyTorch alike. `auto` keeps fp32 there and says why.

use serde::{Deserialize, Serialize};
use tch::Device;

use crate::util::cpu_features;

extern "C" {
    fn fmnist_autocast_enter(device_type: i32) -> i32;
    fn fmnist_autocast_exit(device_type: i32, previous: i32);
    fn fmnist_torch_built_version() -> *const std::os::raw::c_char;
}

/// The numeric precision of forward passes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "cli", derive(clap::ValueEnum))]
#[serde(rename_all = "lowercase")]
pub enum Precision {
    /// Everything in fp32 (the default).
    #[default]
    Fp32,
    /// bf16 autocast, whatever the device.
    Bf16,
    /// bf16 on CUDA and on CPUs with AMX, fp32 elsewhere (`fmnist doctor` says which here).
    Auto,
}

impl std::fmt::Display for Precision {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Precision::Fp32 => "fp32",
            Precision::Bf16 => "bf16",
            Precision::Auto => "auto",
        })
    }
}

impl Precision {
    /// True when forward passes on `device` run in bf16, with the reason.
    pub fn resolve(self, device: Device) -> (bool, String) {
        match self {
            Precision::Fp32 => (false, "fp32 as asked".into()),
            Precision::Bf16 => (true, "bf16 as asked".into()),
            Precision::Auto => match device {
                Device::Cuda(_) => (true, "bf16: a CUDA device".into()),
                _ => {
                    let f = cpu_features();
                    if f.amx_bf16 {
                        (true, "bf16: this CPU has AMX (native bf16 tiles)".into())
                    } else if f.avx512_bf16 {
                        (
                            false,
                            "fp32: this CPU has AVX-512-bf16 but no AMX, where bf16 autocast measured slower than fp32 \
                             (CNN 0.83x, ResNet 0.84x, in the kit and in PyTorch alike)"
                                .into(),
                        )
                    } else {
                        (
                            false,
                            "fp32: this CPU has no native bf16 (no AVX-512-bf16, no AMX), where bf16 is several times slower".into(),
                        )
                    }
                }
            },
        }
    }
}

/// While it lives, forward passes on its device run under bf16 autocast (when enabled).
pub struct Autocast {
    device_type: i32,
    previous: i32,
    active: bool,
    /// Autocast state is per thread: the guard stays on the thread that entered it.
    _not_send: std::marker::PhantomData<*const ()>,
}

impl Autocast {
    /// Enters bf16 autocast on `device` when `enabled`; does nothing otherwise.
    pub fn enter(device: Device, enabled: bool) -> Autocast {
        let device_type = match device {
            Device::Cuda(_) => 1,
            _ => 0,
        };
        if !enabled {
            return Autocast {
                device_type,
                previous: 0,
                active: false,
                _not_send: std::marker::PhantomData,
            };
        }
        // SAFETY: the shim only flips libtorch's thread-local autocast state; it takes and
        // returns plain integers.
        let previous = unsafe { fmnist_autocast_enter(device_type) };
        Autocast {
            device_type,
            previous,
            active: true,
            _not_send: std::marker::PhantomData,
        }
    }
}

impl Drop for Autocast {
    fn drop(&mut self) {
        if self.active {
            // SAFETY: pairs with the enter above on the same thread (the guard is not Send).
            unsafe { fmnist_autocast_exit(self.device_type, self.previous) };
        }
    }
}

/// The libtorch version the kit was compiled against (from its headers), e.g. `2.13.0`.
pub fn torch_built_version() -> String {
    // SAFETY: the shim returns a pointer to a static NUL-terminated string literal.
    unsafe { std::ffi::CStr::from_ptr(fmnist_torch_built_version()) }
        .to_string_lossy()
        .into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::{Kind, Tensor};

    #[test]
    fn autocast_runs_matrix_products_in_bf16_and_only_inside_the_guard() {
        let a = Tensor::randn([8, 8], (Kind::Float, Device::Cpu));
        assert_eq!(a.matmul(&a).kind(), Kind::Float);
        {
            let _bf16 = Autocast::enter(Device::Cpu, true);
            assert_eq!(a.matmul(&a).kind(), Kind::BFloat16);
            let _off = Autocast::enter(Device::Cpu, false);
            assert_eq!(
                a.matmul(&a).kind(),
                Kind::BFloat16,
                "a disabled guard changes nothing"
            );
        }
        assert_eq!(a.matmul(&a).kind(), Kind::Float, "the guard restores fp32");
        assert!(torch_built_version().starts_with("2."));
        assert!(Precision::Auto.resolve(Device::Cuda(0)).0);
        assert!(!Precision::Fp32.resolve(Device::Cpu).0);
    }
}
