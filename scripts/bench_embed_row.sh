#!/usr/bin/env bash
# One row of `make bench`: a backbone's feature extraction in the kit against PyTorch eager (same torch,
# images, size, batch, threads). Usage: scripts/bench_embed_row.sh BACKBONE SIZE [IMAGES]
set -euo pipefail
backbone="$1" size="$2" images="${3:-1024}"
kit="$(fmnist bench embed --backbone "$backbone" --size "$size" --images "$images" --json)"
peer="$(python scripts/bench_embed.py --backbone "$backbone" --size "$size" --images "$images" --json)"
python - "$kit" "$peer" <<'PY'
import json, sys
kit, peer = json.loads(sys.argv[1]), json.loads(sys.argv[2])
k, n, c = kit["images_per_s"], peer["images_per_s_contiguous"], peer["images_per_s_channels_last"]
best = max(n, c)
print(f"{kit['backbone']:<19} {kit['size']:>3} px, batch {kit['batch']}, {kit['threads']} threads: kit {k:6.0f} images/s; "
      f"PyTorch eager {n:6.0f} (NCHW) / {c:6.0f} (channels-last); ratio {k / n:.2f} / {k / c:.2f}  "
      f"target >= 1.0 against the faster: {'met' if k >= best else 'MISSED'}")
PY
