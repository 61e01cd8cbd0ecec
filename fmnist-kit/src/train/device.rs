//! Which device to train on.

use tch::Device;

/// Loads libtorch's CUDA library when it exists, so that CUDA becomes visible to `tch`
/// (cells and binaries otherwise drop it at link time), then returns the GPU if there is
/// one and the CPU otherwise. Harmless on a machine without CUDA.
pub fn best_device() -> Device {
    #[cfg(target_os = "linux")]
    {
        use libloading::os::unix::{Library, RTLD_GLOBAL, RTLD_NOW};
        // SAFETY: loading libtorch's own CUDA library only runs its static initialisers, which
        // register the CUDA backend with the libtorch already loaded in this process.
        if let Ok(lib) = unsafe { Library::open(Some("libtorch_cuda.so"), RTLD_NOW | RTLD_GLOBAL) }
        {
            std::mem::forget(lib); // keep it loaded for the life of the process
        }
    }
    Device::cuda_if_available()
}
