// A few libtorch calls that tch does not expose, compiled by build.rs against the same libtorch:
// autocast on any device type (tch reaches CUDA's only), and the version the kit was built for.
#include <ATen/autocast_mode.h>
#include <c10/core/DeviceType.h>
#include <torch/version.h>

extern "C" {

// Enters an autocast region on `device_type` (a c10::DeviceType: 0 CPU, 1 CUDA) computing in
// bfloat16. Returns the previous enabled state, for fmnist_autocast_exit.
int fmnist_autocast_enter(int device_type) {
  auto device = static_cast<c10::DeviceType>(device_type);
  bool previous = at::autocast::is_autocast_enabled(device);
  at::autocast::set_autocast_enabled(device, true);
  at::autocast::set_autocast_dtype(device, at::kBFloat16);
  at::autocast::increment_nesting();
  return previous ? 1 : 0;
}

// Leaves the region entered last; clears the cast-weight cache when leaving the outermost one.
void fmnist_autocast_exit(int device_type, int previous) {
  auto device = static_cast<c10::DeviceType>(device_type);
  if (at::autocast::decrement_nesting() == 0) {
    at::autocast::clear_cache();
  }
  at::autocast::set_autocast_enabled(device, previous != 0);
}

// The libtorch version these headers belong to, e.g. "2.13.0".
const char* fmnist_torch_built_version() { return TORCH_VERSION; }

}
