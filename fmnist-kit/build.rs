//! Compiles `csrc/torch_shim.cpp` (autocast on any device, the libtorch version) against the
//! libtorch that torch-sys found, which it tells its dependents as `DEP_TCH_LIBTORCH_LIB`.

use std::path::PathBuf;

fn main() {
    println!("cargo:rerun-if-changed=csrc/torch_shim.cpp");
    println!("cargo:rerun-if-env-changed=DEP_TCH_LIBTORCH_LIB");
    let Ok(lib) = std::env::var("DEP_TCH_LIBTORCH_LIB") else {
        panic!(
            "torch-sys did not say where libtorch is (DEP_TCH_LIBTORCH_LIB); see docs/environment.md"
        );
    };
    let lib = PathBuf::from(lib);
    let root = lib
        .parent()
        .map(PathBuf::from)
        .unwrap_or_else(|| lib.clone());
    let include = root.join("include");
    cc::Build::new()
        .cpp(true)
        .file("csrc/torch_shim.cpp")
        .include(&include)
        .include(include.join("torch/csrc/api/include"))
        .flag("-std=c++17")
        .flag("-D_GLIBCXX_USE_CXX11_ABI=1")
        .flag("-DGLOG_USE_GLOG_EXPORT")
        .flag_if_supported("-Wno-unused-parameter")
        .warnings(false)
        .compile("fmnist_torch_shim");
    // The shim calls into libtorch_cpu; keep it linked even where the linker drops unused libraries.
    println!("cargo:rustc-link-search=native={}", lib.display());
    println!("cargo:rustc-link-lib=dylib=torch_cpu");
    println!("cargo:rustc-link-lib=dylib=c10");
}
