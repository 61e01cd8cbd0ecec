#!/usr/bin/env bash
# `make bench`: prints the data-loading, t-SNE, training and trunk figures, each beside its target
# on a 2-core CPU and its PyTorch peer. Numbers vary with machine load: run on an idle machine.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
data="${FMNIST_DATA:-data/data.tar.gz}"

echo "== data loading ($data)"
fmnist bench load --data "$data" --repeat 5

tsne_row() { # label target_seconds target_knn args...
  local label="$1" ts="$2" tk="$3"; shift 3
  fmnist tsne --data "$data" --json "$@" | python scripts/bench_tsne_row.py "$label" "$ts" "$tk"
}

echo "== t-SNE (PCA-50, exact kNN, PCA init, lr N, perplexity 30, 1000 epochs; auto = Barnes-Hut < 20k <= FIt-SNE)"
tsne_row "5,000 training images (auto)" 3 0.80 --n 5000
tsne_row "5,000 training images, FIt-SNE" 3 0.80 --n 5000 --method fitsne
tsne_row "all 70,000 images (auto)" 90 0.84 --pool all --n 70000
tsne_row "all 70,000 images, Barnes-Hut" 90 0.84 --pool all --n 70000 --method barnes-hut

echo "== training throughput, kit vs the same network in PyTorch: eager, fused + channels-last, torch.compile (20 timed steps each)"
python scripts/bench_train.py 20 cnn4 resnet

echo "== ImageNet trunk feature extraction, kit vs the same trunk in PyTorch eager (best of 3 passes, random weights)"
scripts/bench_embed_row.sh efficientnet-lite0 64 1024
scripts/bench_embed_row.sh efficientnet-lite0 150 512
scripts/bench_embed_row.sh inception-v3 75 512
scripts/bench_embed_row.sh inception-v3 150 256
