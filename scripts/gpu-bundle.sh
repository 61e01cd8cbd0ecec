#!/usr/bin/env bash
# `make gpu-bundle`: a self-contained folder (at most 60 MiB) that runs the kit's GPU check on a machine
# that already has torch 2.11 (the project's lent GPU machine: torch 2.11.0+cu130, Python 3.12, no Rust):
#   out/gpu-bundle/
#     fmnist            launcher: finds that torch's lib folder through python3, then runs bin/fmnist
#     bin/fmnist        the CLI built against torch 2.11 (scripts/torch-build.sh 2.11), stripped
#     data/             the four official idx files
#     cache/weights/    EfficientNet-Lite0's ImageNet weights (safetensors)
#     gpu-check.sh      the check (scripts/gpu-check.sh); peer/ the PyTorch peer scripts
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$root/scripts/env.sh"
out="${1:-$root/out/gpu-bundle}"
"$root/scripts/torch-build.sh" 2.11 build --release --bin fmnist
bin="$FMNIST_CACHE_DIR/torch-2.11/target/release/fmnist"
rm -rf "$out.tmp"
mkdir -p "$out.tmp/bin" "$out.tmp/data" "$out.tmp/cache/weights" "$out.tmp/peer"
cp "$bin" "$out.tmp/bin/fmnist"
strip "$out.tmp/bin/fmnist"
cp /usr/share/datasets/fashion-mnist/*.gz "$out.tmp/data/"
cp "$FMNIST_CACHE_DIR/weights/efficientnet-lite0.safetensors" "$out.tmp/cache/weights/"
cp "$root/scripts/gpu-check.sh" "$out.tmp/gpu-check.sh"
cp "$root/scripts/bench_pytorch.py" "$root/scripts/bench_embed.py" "$out.tmp/peer/"
cat > "$out.tmp/fmnist" <<'EOL'
#!/usr/bin/env bash
# Runs bin/fmnist against the torch of this machine's python3 (it must be torch 2.11).
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
py="${PYTHON:-python3}"
found="$("$py" -c 'import torch, os; print(torch.__version__, os.path.join(os.path.dirname(torch.__file__), "lib"))' 2>/dev/null)" || {
  echo "error: no torch importable by $py: this bundle runs on torch 2.11's libraries (set PYTHON=...); then: $0 doctor" >&2; exit 1; }
version="${found%% *}" lib="${found#* }"
case "$version" in
  2.11.*) ;;
  *) echo "error: $py has torch $version, but this fmnist was built for torch 2.11 (a libtorch of another version fails to load); point PYTHON at a torch 2.11, then: $0 doctor" >&2; exit 1 ;;
esac
export LD_LIBRARY_PATH="$lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
export FMNIST_DATA="${FMNIST_DATA:-$here/data}" FMNIST_CACHE_DIR="${FMNIST_CACHE_DIR:-$here/cache}"
exec "$here/bin/fmnist" "$@"
EOL
chmod +x "$out.tmp/fmnist" "$out.tmp/gpu-check.sh"
rm -rf "$out"
mv "$out.tmp" "$out"
bytes="$(du -sb "$out" | cut -f1)"
limit=$((60 * 1024 * 1024))
echo "gpu bundle: $out, $((bytes / 1024 / 1024)) MiB ($bytes bytes; limit 60 MiB)"
[ "$bytes" -le "$limit" ] || { echo "the bundle is larger than 60 MiB" >&2; exit 1; }
