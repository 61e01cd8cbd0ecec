//! `doctor`: what the kit sees — the libtorch it was built for and the one loaded, devices,
//! threads, the CPU features that matter, the evcxr build folders, the data and the caches.

use std::path::{Path, PathBuf};

use anyhow::Result;
use serde_json::json;

use fmnist_kit::data;
use fmnist_kit::models::Backbone;
use fmnist_kit::train::{self, torch_built_version, Precision};
use fmnist_kit::util::{cache_root, cpu_features, cpu_model, sha256_file};

use crate::common::print_json;

/// The libtorch library this process loaded (from /proc/self/maps) and its torch version (the
/// `version.py` of the Python package it belongs to, when it comes from one).
pub(crate) fn loaded_torch() -> (Option<PathBuf>, Option<String>) {
    let maps = std::fs::read_to_string("/proc/self/maps").unwrap_or_default();
    let lib = maps
        .lines()
        .filter_map(|l| l.split_whitespace().nth(5))
        .find(|p| p.ends_with("/libtorch_cpu.so"))
        .map(PathBuf::from);
    let version = lib.as_ref().and_then(|l| {
        let package = l.parent()?.parent()?;
        let text = std::fs::read_to_string(package.join("version.py")).ok()?;
        text.lines()
            .find(|l| l.starts_with("__version__"))
            .and_then(|l| l.split('\'').nth(1).or_else(|| l.split('"').nth(1)))
            .map(str::to_string)
    });
    (lib, version)
}

/// `major.minor` of a version string (`2.13.0+cu130` → `2.13`).
pub(crate) fn major_minor(v: &str) -> String {
    v.split(['.', '+']).take(2).collect::<Vec<_>>().join(".")
}

/// An error pointing at `fmnist doctor` when the loaded libtorch is not the one the kit was
/// built for (a version mismatch crashes or misbehaves later, far from its cause).
pub(crate) fn check_torch() -> Result<()> {
    let built = torch_built_version();
    if let (_, Some(loaded)) = loaded_torch() {
        if major_minor(&loaded) != major_minor(&built) {
            anyhow::bail!(
                "libtorch {loaded} is loaded, but this fmnist was built for {built}: point \
                 LD_LIBRARY_PATH at a torch {} (or rebuild against this one; docs/gpu.md says how). \
                 `fmnist doctor` shows what is found",
                major_minor(&built)
            );
        }
    }
    Ok(())
}

fn folder(path: &Path) -> serde_json::Value {
    let mut files = 0u64;
    let mut bytes = 0u64;
    let mut newest = 0u64;
    let mut stack = vec![path.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for e in entries.flatten() {
            let Ok(meta) = e.metadata() else { continue };
            if meta.is_dir() {
                stack.push(e.path());
            } else {
                files += 1;
                bytes += meta.len();
                let modified = meta
                    .modified()
                    .ok()
                    .and_then(|m| m.duration_since(std::time::UNIX_EPOCH).ok())
                    .map_or(0, |d| d.as_secs());
                newest = newest.max(modified);
            }
        }
    }
    json!({ "path": path, "exists": path.is_dir(), "files": files, "bytes": bytes, "newest_unix": newest })
}

fn nvidia_smi() -> Option<Vec<serde_json::Value>> {
    let out = std::process::Command::new("nvidia-smi")
        .args([
            "--query-gpu=name,memory.total,driver_version",
            "--format=csv,noheader,nounits",
        ])
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    Some(
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(|l| {
                let f: Vec<&str> = l.split(',').map(str::trim).collect();
                json!({ "name": f.first(), "memory_mib": f.get(1).and_then(|m| m.parse::<u64>().ok()),
                        "driver": f.get(2) })
            })
            .collect(),
    )
}

/// Which data file, artifacts folder and binary are in use, and why: the data's and the
/// artifacts' reasons name the environment variable or the folder search that chose them.
fn paths_in_use() -> (String, PathBuf, String, PathBuf) {
    let root = std::env::var_os("FMNIST_ROOT").map(PathBuf::from);
    let data_why = match std::env::var_os("FMNIST_DATA").filter(|v| !v.is_empty()) {
        Some(d)
            if root
                .as_ref()
                .is_some_and(|r| r.join("data/data.tar.gz").as_os_str() == d) =>
        {
            format!(
                "FMNIST_DATA, made by the env.sh of the checkout {}",
                root.as_ref()
                    .map_or(String::new(), |r| r.display().to_string())
            )
        }
        Some(_) => "FMNIST_DATA, set by hand".into(),
        None => "no FMNIST_DATA: the first data/data.tar.gz from the current folder up".into(),
    };
    let profile = fmnist_kit::Profile::from_env()
        .unwrap_or_else(|_| fmnist_kit::Profile::named(fmnist_kit::ProfileName::Quick));
    let artifacts = profile.artifacts_dir();
    let artifacts_why = if std::env::var_os("FMNIST_ARTIFACTS").is_some_and(|v| !v.is_empty()) {
        format!("FMNIST_ARTIFACTS, profile {}", profile.name)
    } else {
        format!(
            "artifacts/ of the nearest folder holding data/, profile {}",
            profile.name
        )
    };
    let binary = std::env::current_exe().unwrap_or_else(|_| PathBuf::from("?"));
    (data_why, artifacts, artifacts_why, binary)
}

pub(crate) fn run_doctor(json_out: bool) -> Result<()> {
    let mut problems: Vec<String> = Vec::new();
    let built = torch_built_version();
    let (lib, loaded) = loaded_torch();
    if let Some(l) = &loaded {
        if major_minor(l) != major_minor(&built) {
            problems.push(format!(
                "libtorch {l} is loaded but the kit was built for {built}"
            ));
        }
    }
    let device = train::best_device();
    let cuda = tch::Cuda::is_available();
    let gpus = nvidia_smi();
    if gpus.as_ref().is_some_and(|g| !g.is_empty()) && !cuda {
        problems.push(
            "nvidia-smi sees a GPU but libtorch does not: is this torch's CUDA build loaded?"
                .into(),
        );
    }
    let features = cpu_features();
    let (auto_bf16, auto_reason) = Precision::Auto.resolve(tch::Device::Cpu);
    let cache = cache_root();
    let data_path = data::default_data_path();
    let data_sha = data_path
        .is_file()
        .then(|| sha256_file(&data_path).ok())
        .flatten();
    if !data_path.is_file() {
        problems.push(format!(
            "no data file at {} (make data builds it)",
            data_path.display()
        ));
    }
    let (data_why, artifacts, artifacts_why, binary) = paths_in_use();
    let lite0 = Backbone::EfficientNetLite0.default_weights();
    if lite0.is_none() {
        problems.push(
            "no EfficientNet-Lite0 ImageNet weights in the cache (make setup converts them)".into(),
        );
    }
    let v = json!({
        "torch": { "built_for": built, "loaded": loaded, "library": lib },
        "devices": {
            "chosen": format!("{device:?}"), "cuda_available": cuda,
            "cuda_devices": if cuda { tch::Cuda::device_count() } else { 0 },
            "cudnn": cuda && tch::Cuda::cudnn_is_available(), "nvidia_smi": gpus,
        },
        "threads": tch::get_num_threads(),
        "cpu": { "model": cpu_model(), "features": features,
                 "precision_auto_on_cpu": if auto_bf16 { "bf16" } else { "fp32" }, "why": auto_reason },
        "evcxr_build": { "batch": folder(&cache.join("evcxr-build/batch")), "lab": folder(&cache.join("evcxr-build/lab")) },
        "data": { "path": data_path, "exists": data_path.is_file(), "sha256": data_sha, "why": data_why,
                  "parsed_cache": folder(&data::default_cache_dir()) },
        "artifacts": { "path": artifacts, "why": artifacts_why },
        "binary": binary,
        "checkout": std::env::var_os("FMNIST_ROOT").map(PathBuf::from),
        "weights": { "efficientnet-lite0": lite0,
                     "inception-v3": Backbone::InceptionV3.default_weights(),
                     "features_cache": folder(&cache.join("features")) },
        "cache_dir": cache,
        "problems": problems,
    });
    if json_out {
        return print_json(&v);
    }
    println!("fmnist doctor");
    println!(
        "  libtorch      built for {built}, loaded {} ({})",
        loaded.as_deref().unwrap_or("?"),
        lib.as_ref()
            .map_or("not found in /proc/self/maps".into(), |l| l
                .display()
                .to_string())
    );
    println!(
        "  device        {device:?} (CUDA {}{})",
        if cuda { "available" } else { "not available" },
        if cuda {
            format!(", {} device(s)", tch::Cuda::device_count())
        } else {
            String::new()
        }
    );
    if let Some(g) = &gpus {
        for gpu in g {
            println!(
                "  GPU           {} ({} MiB, driver {})",
                gpu["name"].as_str().unwrap_or("?"),
                gpu["memory_mib"],
                gpu["driver"].as_str().unwrap_or("?")
            );
        }
    }
    println!("  threads       {}", tch::get_num_threads());
    println!(
        "  CPU           {} — AVX2 {}, AVX-512 {}, AVX-512-bf16 {}, AMX-bf16 {}",
        cpu_model(),
        yes(features.avx2),
        yes(features.avx512f),
        yes(features.avx512_bf16),
        yes(features.amx_bf16)
    );
    println!("  --precision auto on the CPU: {auto_reason}");
    for name in ["batch", "lab"] {
        let f = &v["evcxr_build"][name];
        println!(
            "  evcxr {name:<7} {} ({} files, {} MB)",
            f["path"].as_str().unwrap_or("?"),
            f["files"],
            f["bytes"].as_u64().unwrap_or(0) / 1_000_000
        );
    }
    println!(
        "  data          {} ({}; {data_why})",
        data_path.display(),
        data_sha.as_deref().unwrap_or("missing")
    );
    println!("  artifacts     {} ({artifacts_why})", artifacts.display());
    println!("  binary        {}", binary.display());
    println!(
        "  Lite0 weights {}",
        lite0
            .as_ref()
            .map_or("missing".into(), |p| p.display().to_string())
    );
    println!(
        "  Inception     {}",
        Backbone::InceptionV3
            .default_weights()
            .map_or("none ($FMNIST_INCEPTION_WEIGHTS not set)".into(), |p| p
                .display()
                .to_string())
    );
    println!("  cache         {}", cache.display());
    if problems.is_empty() {
        println!("no problem found");
    } else {
        for p in &problems {
            println!("PROBLEM: {p}");
        }
    }
    Ok(())
}

fn yes(b: bool) -> &'static str {
    if b {
        "yes"
    } else {
        "no"
    }
}
