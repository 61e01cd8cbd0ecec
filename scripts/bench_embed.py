#!/usr/bin/env python3
"""The peer of `fmnist bench embed`: a backbone's trunk in plain PyTorch eager (the venv's torch), on the same
images, size, batch and threads, measured the same way (best of three rounds over the same batches, after one
warm-up batch), in both memory layouts. Random weights: speed does not depend on their values.

    python scripts/bench_embed.py --backbone efficientnet-lite0 --size 64 [--images 1024] [--batch 64] [--json]
"""
import argparse
import gzip
import json
import time

import numpy as np
import torch
import torch.nn.functional as F


def test_images(n):
    with gzip.open("/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz") as f:
        raw = np.frombuffer(f.read(), dtype=np.uint8, offset=16).reshape(-1, 28, 28)
    return torch.from_numpy(raw[:n].copy())


def trunk(backbone):
    if backbone == "inception-v3":
        import torchvision
        m = torchvision.models.inception_v3(weights=None, aux_logits=False, init_weights=False)
        m.fc = torch.nn.Identity()
        return m, lambda r: r / 127.5 - 1.0
    from efficientnet_lite_pytorch import EfficientNet
    m = EfficientNet.from_name("efficientnet-lite0")
    return (lambda x: F.adaptive_avg_pool2d(m.extract_features(x), 1).flatten(1)), (lambda r: (r - 127.0) / 128.0), m


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--backbone", required=True, choices=["inception-v3", "efficientnet-lite0"])
    ap.add_argument("--size", type=int, required=True)
    ap.add_argument("--images", type=int, default=1024)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    parts = trunk(a.backbone)
    if a.backbone == "inception-v3":
        net, norm = parts
        module = net
    else:
        net, norm, module = parts
    module.eval()
    images = test_images(a.images)
    out = {"backbone": a.backbone, "size": a.size, "batch": a.batch, "images": a.images, "threads": a.threads}
    for layout, fmt in [("contiguous", torch.contiguous_format), ("channels_last", torch.channels_last)]:
        module.to(memory_format=fmt)

        def run(n):
            start = time.perf_counter()
            with torch.no_grad():
                for i in range(0, n, a.batch):
                    x = images[i:i + a.batch].to(torch.float32)[:, None]
                    r = F.interpolate(x, size=(a.size, a.size), mode="bilinear", align_corners=False)
                    x = norm(r.expand(-1, 3, -1, -1)).contiguous(memory_format=fmt)
                    net(x)
            return time.perf_counter() - start

        run(a.batch)
        best = min(run(a.images) for _ in range(3))
        out[f"images_per_s_{layout}"] = a.images / best
    if a.json:
        print(json.dumps(out))
    else:
        print(f"PyTorch eager {a.backbone} at {a.size} px: {out['images_per_s_contiguous']:.0f} images/s (NCHW), "
              f"{out['images_per_s_channels_last']:.0f} (channels-last)")


if __name__ == "__main__":
    main()
