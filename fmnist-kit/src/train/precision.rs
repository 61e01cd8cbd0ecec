//! Mixed precision: forward passes in bfloat16 under libtorch's autocast (matrix products and
//! convolutions in bf16, reductions and the loss in fp32, fp32 master weights updated by the
//! optimiser), on the GPU and on CPUs with native bf16. tch reaches only CUDA's autocast, so
//! the kit compiles a few lines of C++ against the same libtorch (`csrc/torch_shim.cpp`).
//!
//! [`Precision::Auto`] picks bf16 on CUDA, and on the CPU only where bf16 is faster. With AMX it
//! is. On AVX2-only CPUs libtorch emulates bf16 and training is several times slower, so `auto`
//! keeps fp32. On AVX-512-bf16 CPUs without AMX it depends on the CPU (measured with
//! augmentation: 0.83–0.84× on an Intel Xeon on 2026-11-30, 1.51–1.57× on an AMD EPYC on
//! 2026-12-01), so `auto` runs a short probe there ([`probe_bf16`]: the CNN's training step in
//! both precisions) once per CPU, caches the figures under the kit's cache folder, and picks bf16
//! when it measured at least 1.15× faster.

use std::path::PathBuf;
use std::time::Instant;

use serde::{Deserialize, Serialize};
use tch::nn::ModuleT;
use tch::{Device, Kind, Tensor};

use crate::error::Result;
use crate::models::{Cnn4, Cnn4Config, ModelKind};
use crate::util::{cache_root, cpu_features, cpu_model, json_key, read_json, write_json_atomic};

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
    /// bf16 on CUDA, on CPUs with AMX, and on AVX-512-bf16 CPUs where a short probe measured it
    /// faster; fp32 elsewhere (`fmnist doctor` says which here). On the CPU, transfer networks
    /// train in fp32 under it.
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
                        match probe_bf16() {
                            Ok(p) => (p.bf16_pays(), p.verdict()),
                            Err(e) => (false, format!("fp32: the bf16 probe failed ({e})")),
                        }
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

    /// Whether the training steps of `kind` on `device` run in bf16, with the reason: as
    /// [`Self::resolve`], except that `auto` keeps fp32 on the CPU for a network whose row of
    /// [`crate::models::MODELS`] says the CNN's probe does not speak for it (`auto_bf16`).
    pub fn resolve_for(self, kind: ModelKind, device: Device) -> (bool, String) {
        if self == Precision::Auto && device == Device::Cpu && !kind.spec().auto_bf16 {
            return (
                false,
                format!(
                    "fp32: the bf16 probe times the CNN's step, which does not speak for the {}'s on the CPU",
                    kind.spec().title
                ),
            );
        }
        self.resolve(device)
    }
}

/// What the bf16 probe measured on this CPU: the 4-layer CNN's forward and backward pass
/// (batch 128, random images, the default memory layout) in fp32 and under bf16 autocast,
/// alternating, best of three rounds each.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Bf16Probe {
    pub cpu: String,
    pub avx512_bf16: bool,
    pub amx_bf16: bool,
    pub threads: i64,
    pub torch: String,
    pub fp32_images_per_s: f64,
    pub bf16_images_per_s: f64,
    /// Where the figures are cached, and whether they were read from there.
    pub file: PathBuf,
    #[serde(skip)]
    pub from_cache: bool,
}

/// bf16 must be at least this much faster for `auto` to pick it.
pub const BF16_MIN_SPEEDUP: f64 = 1.15;

impl Bf16Probe {
    /// bf16 over fp32 throughput.
    pub fn speedup(&self) -> f64 {
        self.bf16_images_per_s / self.fp32_images_per_s
    }

    /// True when bf16 measured at least [`BF16_MIN_SPEEDUP`]× faster.
    pub fn bf16_pays(&self) -> bool {
        self.speedup() >= BF16_MIN_SPEEDUP
    }

    /// `auto`'s choice with its reason, for `fmnist doctor` and logs.
    pub fn verdict(&self) -> String {
        format!(
            "{}: this CPU has AVX-512-bf16 but no AMX, and the probe measured bf16 at {:.2}x fp32 ({:.0} against {:.0} images/s; {} {})",
            if self.bf16_pays() { "bf16" } else { "fp32" },
            self.speedup(),
            self.bf16_images_per_s,
            self.fp32_images_per_s,
            if self.from_cache {
                "read from"
            } else {
                "measured now, cached in"
            },
            self.file.display()
        )
    }
}

/// The bf16 probe of this CPU, from its cache file when there is one for this CPU, thread count
/// and libtorch, else measured now (a few seconds) and cached.
pub fn probe_bf16() -> Result<Bf16Probe> {
    let f = cpu_features();
    let (cpu, threads, torch) = (cpu_model(), tch::get_num_threads(), torch_built_version());
    let key = json_key(
        &(&cpu, f.avx512_bf16, f.amx_bf16, threads, &torch),
        std::path::Path::new("bf16 probe"),
    )?;
    let file = cache_root()
        .join("precision")
        .join(format!("bf16-probe-{key}.json"));
    if let Ok(mut p) = read_json::<Bf16Probe>(&file) {
        p.from_cache = true;
        p.file = file;
        return Ok(p);
    }
    let (fp32, bf16) = measure_cnn_step()?;
    let probe = Bf16Probe {
        cpu,
        avx512_bf16: f.avx512_bf16,
        amx_bf16: f.amx_bf16,
        threads: threads.into(),
        torch,
        fp32_images_per_s: fp32,
        bf16_images_per_s: bf16,
        file: file.clone(),
        from_cache: false,
    };
    write_json_atomic(&file, &probe)?;
    Ok(probe)
}

/// Images/s of the CNN's forward and backward pass in fp32 and in bf16 (best of three
/// alternating rounds of 4 steps, after 2 warm-up steps each).
fn measure_cnn_step() -> Result<(f64, f64)> {
    let vs = tch::nn::VarStore::new(Device::Cpu);
    let net = Cnn4::new(&vs.root(), &Cnn4Config::default())?;
    let x = Tensor::rand([128, 1, 28, 28], (Kind::Float, Device::Cpu));
    let y = Tensor::zeros([128], (Kind::Int64, Device::Cpu));
    let step = |bf16: bool| {
        let loss = {
            let _autocast = Autocast::enter(Device::Cpu, bf16);
            net.forward_t(&x, true).cross_entropy_for_logits(&y)
        };
        loss.backward();
        let _ = loss.double_value(&[]);
    };
    let rate = |bf16: bool, steps: usize| {
        let start = Instant::now();
        for _ in 0..steps {
            step(bf16);
        }
        (steps * 128) as f64 / start.elapsed().as_secs_f64()
    };
    rate(false, 2);
    rate(true, 2);
    let (mut fp32, mut bf16) = (0.0f64, 0.0f64);
    for _ in 0..3 {
        fp32 = fp32.max(rate(false, 4));
        bf16 = bf16.max(rate(true, 4));
    }
    Ok((fp32, bf16))
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

    #[test]
    fn auto_trains_in_bf16_only_the_networks_the_cnns_probe_speaks_for() {
        for kind in ModelKind::all() {
            let (bf16, reason) = Precision::Auto.resolve_for(kind, Device::Cpu);
            if kind.spec().auto_bf16 {
                assert_eq!(bf16, Precision::Auto.resolve(Device::Cpu).0, "{kind}");
            } else {
                assert!(!bf16, "{kind}: {reason}");
                assert!(reason.contains(kind.spec().title), "{reason}");
            }
            // An explicit choice and the GPU are not overridden.
            assert!(Precision::Bf16.resolve_for(kind, Device::Cpu).0);
            assert!(!Precision::Fp32.resolve_for(kind, Device::Cpu).0);
            assert!(Precision::Auto.resolve_for(kind, Device::Cuda(0)).0);
        }
        assert!(!ModelKind::EfficientNetLite0.spec().auto_bf16);
        assert!(ModelKind::Cnn4.spec().auto_bf16 && ModelKind::ResNet.spec().auto_bf16);
    }

    #[test]
    fn the_probe_picks_bf16_only_where_it_measured_faster() {
        let probe = |bf16| Bf16Probe {
            cpu: "test".into(),
            avx512_bf16: true,
            amx_bf16: false,
            threads: 2,
            torch: "2.13.0".into(),
            fp32_images_per_s: 2000.0,
            bf16_images_per_s: bf16,
            file: PathBuf::from("/tmp/probe.json"),
            from_cache: true,
        };
        assert!(probe(3000.0).bf16_pays() && probe(3000.0).verdict().starts_with("bf16: "));
        assert!(!probe(2200.0).bf16_pays(), "1.10x is not enough");
        assert!(!probe(1600.0).bf16_pays() && probe(1600.0).verdict().contains("0.80x"));
        let json = serde_json::to_string(&probe(3000.0)).unwrap();
        let back: Bf16Probe = serde_json::from_str(&json).unwrap();
        assert_eq!(back.bf16_images_per_s, 3000.0);
    }
}
