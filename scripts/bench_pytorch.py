#!/usr/bin/env python3
"""The peer of `fmnist bench train`: the same networks, augmentation, optimiser and batch sizes in
plain PyTorch eager (the venv's torch), measured the same way (three alternating rounds per setting of 3 warm-up and N timed steps, best round kept
of forward + cross-entropy + L2 + backward + Adam on real training images).

    python scripts/bench_pytorch.py --model cnn4 [--steps 20] [--batch-size B] [--threads 2] [--json]
"""
import argparse
import gzip
import json
import math
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F


class Cnn4(nn.Module):
    def __init__(self):
        super().__init__()
        chans = [1, 32, 68, 128, 256]
        self.convs = nn.ModuleList(nn.Conv2d(chans[i], chans[i + 1], 3, padding=1) for i in range(4))
        self.bns = nn.ModuleList(nn.BatchNorm2d(c, eps=1e-3, momentum=0.1) for c in chans[1:])
        self.d1, self.d2, self.out = nn.Linear(256, 512), nn.Linear(512, 256), nn.Linear(256, 10)

    def forward(self, x):
        for conv, bn in zip(self.convs, self.bns):
            x = F.max_pool2d(bn(F.relu(conv(x))), 2)
        x = x.flatten(1)
        x = F.dropout(F.relu(self.d1(x)), 0.5, self.training)
        x = F.dropout(F.relu(self.d2(x)), 0.5, self.training)
        return self.out(x)

    def l2(self):
        return 0.01 * (self.d1.weight.square().sum() + self.d2.weight.square().sum())


class Block(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.c1 = nn.Conv2d(cin, cout, 3, stride, 1)
        self.b1 = nn.BatchNorm2d(cout, eps=1e-3, momentum=0.1)
        self.c2 = nn.Conv2d(cout, cout, 3, 1, 1)
        self.b2 = nn.BatchNorm2d(cout, eps=1e-3, momentum=0.1)
        self.proj = nn.Conv2d(cin, cout, 1, stride) if (stride != 1 or cin != cout) else None

    def forward(self, x):
        y = F.relu(self.b1(self.c1(x)))
        y = self.b2(self.c2(y))
        return F.relu(y + (self.proj(x) if self.proj is not None else x))


class ResNet(nn.Module):
    """The kit's ResNet; `stem`, `stages` and `blocks` as its configuration (`stem_filters`,
    `stage_filters`, `blocks_per_stage`), the original's by default."""

    def __init__(self, stem=64, stages=(64, 128, 256, 512), blocks=2):
        super().__init__()
        self.stem = nn.Conv2d(1, stem, 7, 2, 3)
        self.stem_bn = nn.BatchNorm2d(stem, eps=1e-3, momentum=0.1)
        layers, cin = [], stem
        for s, f in enumerate(stages):
            for b in range(blocks):
                layers.append(Block(cin, f, 2 if (s > 0 and b == 0) else 1))
                cin = f
        self.blocks = nn.Sequential(*layers)
        self.out = nn.Linear(cin, 10)

    def forward(self, x):
        x = F.relu(self.stem_bn(self.stem(x)))
        x = self.blocks(x)
        return self.out(F.adaptive_avg_pool2d(x, 1).flatten(1))

    def l2(self):
        return 1e-4 * sum(m.weight.square().sum() for m in self.modules() if isinstance(m, (nn.Conv2d, nn.Linear)))


def augment(x, cfg, gen):
    """Batched: flip, shifts (nearest fill) in one gather, brightness, random erasing (uniform fill)."""
    n, c, h, w = x.shape
    rand = lambda *s: torch.rand(*s, generator=gen)
    flip = (rand(n) < 0.5).float() if cfg["flip"] else torch.zeros(n)
    dx = (rand(n) * 2 - 1) * cfg["wshift"] * w
    dy = (rand(n) * 2 - 1) * cfg["hshift"] * h
    xs = torch.arange(w).float().view(1, 1, w)
    ys = torch.arange(h).float().view(1, h, 1)
    sx = xs - dx.view(n, 1, 1)
    f = flip.view(n, 1, 1)
    sx = f * (w - 1 - sx) + (1 - f) * sx
    sy = ys - dy.view(n, 1, 1)
    ix = sx.round().clamp(0, w - 1).long()
    iy = sy.round().clamp(0, h - 1).long()
    idx = (iy * w + ix).view(n, 1, h * w).expand(n, c, h * w)
    x = x.reshape(n, c, h * w).gather(2, idx).view(n, c, h, w)
    if cfg["brightness"]:
        x = (x * (rand(n, 1, 1, 1) + 0.5)).clamp(0, 1)
    if not cfg.get("erasing", True):
        return x
    # random erasing, p 0.5, area 0.02-0.1, aspect 0.1-10, 10 attempts
    a = 10
    wanted = rand(n) < 0.5
    area = rand(n, a) * 0.08 + 0.02
    aspect = rand(n, a) * 9.9 + 0.1
    bh = (area * aspect * h * w).sqrt().round().long()
    bw = (area / aspect * h * w).sqrt().round().long()
    top = (rand(n, a) * h).floor().long()
    left = (rand(n, a) * w).floor().long()
    fits = (bh >= 1) & (bw >= 1) & (top + bh <= h) & (left + bw <= w)
    first = fits.long().argmax(1, keepdim=True)
    pick = lambda t: t.gather(1, first).view(n, 1, 1, 1)
    applied = (wanted & fits.any(1)).view(n, 1, 1, 1)
    t4, l4, h4, w4 = pick(top), pick(left), pick(bh), pick(bw)
    yy = torch.arange(h).view(1, 1, h, 1)
    xx = torch.arange(w).view(1, 1, 1, w)
    mask = (yy >= t4) & (yy < t4 + h4) & (xx >= l4) & (xx < l4 + w4) & applied
    return torch.where(mask, rand(n, c, h, w), x)


def load_images(count):
    with gzip.open("/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz") as f:
        raw = np.frombuffer(f.read(), dtype=np.uint8, offset=16)
    with gzip.open("/usr/share/datasets/fashion-mnist/train-labels-idx1-ubyte.gz") as f:
        labels = np.frombuffer(f.read(), dtype=np.uint8, offset=8)
    x = torch.from_numpy(raw[: count * 784].copy()).view(count, 1, 28, 28).float() / 255
    return x, torch.from_numpy(labels[:count].astype(np.int64))


def make_runner(model_name, batch, use_aug, x, y, fused=False, channels_last=False, bf16=False, compiled=False):
    torch.manual_seed(13)
    model = Cnn4() if model_name == "cnn4" else ResNet()
    model.train()
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    # torch.compile (inductor): the forward, the loss and (through AOTAutograd) the backward are compiled
    # on the first steps, which the warm-up absorbs and `compile_seconds` reports.
    forward = torch.compile(model) if compiled else model
    # Default: what plain PyTorch code gets (on the CPU, a loop of per-tensor operations).
    opt = torch.optim.Adam(model.parameters(), lr=1e-3, eps=1e-7, fused=fused or None)
    cfg = {"flip": True, "wshift": 0.0 if model_name == "cnn4" else 0.1, "hshift": 0.2 if model_name == "cnn4" else 0.1,
           "brightness": model_name == "cnn4"}
    gen = torch.Generator().manual_seed(13)
    batches = x.shape[0] // batch

    def run(count):
        start = time.perf_counter()
        for s in range(count):
            lo = (s % batches) * batch
            xb, yb = x[lo:lo + batch], y[lo:lo + batch]
            if use_aug:
                xb = augment(xb, cfg, gen)
            if channels_last:
                xb = xb.contiguous(memory_format=torch.channels_last)
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                logits = forward(xb)
                loss = F.cross_entropy(logits, yb) + model.l2()
            if not math.isfinite(loss.item()):
                raise SystemExit("loss diverged")
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        return time.perf_counter() - start

    return run


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", choices=["cnn4", "resnet"], required=True)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--batch-size", type=int, default=None)
    ap.add_argument("--threads", type=int, default=torch.get_num_threads())
    ap.add_argument("--fused-adam", action="store_true", help="torch.optim.Adam(fused=True)")
    ap.add_argument("--channels-last", action="store_true", help="model and inputs in channels-last order")
    ap.add_argument("--bf16", action="store_true", help="forward and loss under torch.autocast('cpu', bfloat16)")
    ap.add_argument("--compile", action="store_true", help="torch.compile(model) (inductor); its warm-up is reported apart")
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    batch = a.batch_size or (256 if a.model == "cnn4" else 32)
    x, y = load_images(batch * max(a.steps, 8))
    # As the kit: 3 warm-up steps, then three alternating rounds per setting, best round kept.
    plain = make_runner(a.model, batch, False, x, y, a.fused_adam, a.channels_last, a.bf16, a.compile)
    augmented = make_runner(a.model, batch, True, x, y, a.fused_adam, a.channels_last, a.bf16, a.compile)
    noaug = aug = 0.0
    # The first steps compile (with --compile); they are timed apart and kept out of the throughput.
    compile_seconds = plain(2) + augmented(2)
    for _ in range(3):
        plain(3)
        noaug = max(noaug, a.steps * batch / plain(a.steps))
        augmented(3)
        aug = max(aug, a.steps * batch / augmented(a.steps))
    out = {"model": a.model, "batch_size": batch, "steps": a.steps, "threads": torch.get_num_threads(),
           "torch": torch.__version__, "fused_adam": a.fused_adam, "channels_last": a.channels_last, "bf16": a.bf16,
           "compiled": a.compile, "compile_seconds": compile_seconds if a.compile else None,
           "images_per_s_noaug": noaug, "images_per_s_aug": aug,
           "augmentation_share": 1 - aug / noaug}
    if a.json:
        print(json.dumps(out, indent=2))
    else:
        extras = "".join([", fused Adam" if a.fused_adam else "", ", channels-last" if a.channels_last else ""])
        mode = f"compiled ({compile_seconds:.0f} s to compile)" if a.compile else "eager"
        print(f"PyTorch {torch.__version__} {mode}{extras}, {a.model}, batch {batch}, {out['threads']} threads: "
              f"{noaug:.0f} images/s without augmentation, {aug:.0f} with")


if __name__ == "__main__":
    main()
