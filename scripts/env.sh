#!/usr/bin/env bash
# The environment fmnist-kit runs in. Source it (`source scripts/env.sh`) or print the export
# lines for your shell: `eval "$(make -s env)"` (which runs `scripts/env.sh --print`).
# Everything heavy lives in $FMNIST_CACHE_DIR, outside the checkout, so clones share it; each checkout
# keeps its own data file, artifacts and `fmnist` binary (out/bin, copied there by `make build`), also
# in a shell that evaluated another checkout's env: FMNIST_ROOT says which checkout the values are for.

FMNIST_CACHE_DIR="${FMNIST_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/fmnist-kit}"
fmnist_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
fmnist_venv="$FMNIST_CACHE_DIR/venv"
fmnist_torch_lib="$(ls -d "$fmnist_venv"/lib/python3*/site-packages/torch/lib 2>/dev/null | head -n 1 || true)"
if [ -z "$fmnist_torch_lib" ]; then
  # Not installed yet: the path setup.sh will create.
  fmnist_pyver="$(python3 -c 'import sys; print(f"python{sys.version_info[0]}.{sys.version_info[1]}")' 2>/dev/null || echo python3)"
  fmnist_torch_lib="$fmnist_venv/lib/$fmnist_pyver/site-packages/torch/lib"
fi

fmnist_exports() {
  local path_prefix="$fmnist_venv/bin:$FMNIST_CACHE_DIR/evcxr/bin"
  cat <<EOV
export FMNIST_CACHE_DIR="$FMNIST_CACHE_DIR"
export VIRTUAL_ENV="$fmnist_venv"
export LIBTORCH_USE_PYTORCH=1
export LD_LIBRARY_PATH="$fmnist_torch_lib\${LD_LIBRARY_PATH:+:\$LD_LIBRARY_PATH}"
export CARGO_TARGET_DIR="$FMNIST_CACHE_DIR/target"
export JUPYTER_PATH="$FMNIST_CACHE_DIR/jupyter"
export JUPYTER_DATA_DIR="$FMNIST_CACHE_DIR/jupyter"
export JUPYTER_CONFIG_DIR="$FMNIST_CACHE_DIR/jupyter-config"
# A data path made for another checkout (by its env.sh) is replaced; one set by hand is kept.
if [ -n "\${FMNIST_ROOT:-}" ] && [ "\$FMNIST_ROOT" != "$fmnist_root" ] && [ "\${FMNIST_DATA:-}" = "\$FMNIST_ROOT/data/data.tar.gz" ]; then unset FMNIST_DATA; fi
export FMNIST_DATA="\${FMNIST_DATA:-$fmnist_root/data/data.tar.gz}"
export FMNIST_ROOT="$fmnist_root"
case ":\$PATH:" in *":$fmnist_venv/bin:"*) ;; *) export PATH="$path_prefix:\$PATH" ;; esac
# This checkout's own fmnist comes first (make build copies it there from the shared target folder).
case "\$PATH:" in "$fmnist_root/out/bin:"*) ;; *) export PATH="$fmnist_root/out/bin:\$PATH" ;; esac
EOV
}

if [ "${1:-}" = "--print" ]; then
  fmnist_exports
else
  eval "$(fmnist_exports)"
fi
