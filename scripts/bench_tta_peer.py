#!/usr/bin/env python3
"""The PyTorch peer of `fmnist bench tta`: the same network trained with the same recipe, read from the
kit's JSON (`config`: epochs, batch size, Adam's betas and epsilon, the peak rate, the warm-up + cosine
schedule per step, decoupled weight decay on the kernels, label smoothing, flip / shifts / random erasing,
test-time flip) on the same training images (`train_indices`), with the same network (`network`: the
ResNet's filters and blocks) and training steps in the precision the kit resolved (`bf16`: autocast), scoring
the 10,000 test images in fp32 after every epoch with the clock stopped, as the kit does. Kernels start as the
kit's do (Glorot-uniform for the CNN, He-normal for the ResNet, zero biases). Prints JSON shaped as the kit's.

    fmnist bench tta --model cnn4 > kit.json && python scripts/bench_tta_peer.py kit.json
"""
import gzip
import json
import math
import sys
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, str(__import__("pathlib").Path(__file__).resolve().parent))
from bench_pytorch import Cnn4, ResNet, augment  # noqa: E402

SOURCE = "/usr/share/datasets/fashion-mnist"


def idx(name, offset, shape):
    with gzip.open(f"{SOURCE}/{name}") as f:
        return np.frombuffer(f.read(), dtype=np.uint8, offset=offset).reshape(shape)


def rate_at(cfg, base, step, steps_per_epoch, total):
    s = cfg["schedule"]
    if not isinstance(s, dict) or "WarmupCosine" not in s:
        return base
    w = s["WarmupCosine"]
    warmup = round(w["warmup_epochs"] * steps_per_epoch)
    if step <= warmup:
        return base * step / max(warmup, 1)
    t = min(max((step - warmup) / max(total - warmup, 1), 0.0), 1.0)
    return w["min_lr"] + 0.5 * (base - w["min_lr"]) * (1 + math.cos(math.pi * t))


def main():
    kit = json.load(open(sys.argv[1]))
    cfg = kit["config"]
    torch.set_num_threads(kit["threads"])
    torch.manual_seed(kit["seed"])
    images = idx("train-images-idx3-ubyte.gz", 16, (60000, 1, 28, 28))
    labels = idx("train-labels-idx1-ubyte.gz", 8, (60000,)).astype(np.int64)
    take = np.array(kit["train_indices"])
    x = torch.from_numpy(images[take].copy()).float() / 255
    y = torch.from_numpy(labels[take].copy())
    xt = torch.from_numpy(idx("t10k-images-idx3-ubyte.gz", 16, (10000, 1, 28, 28)).copy()).float() / 255
    yt = torch.from_numpy(idx("t10k-labels-idx1-ubyte.gz", 8, (10000,)).astype(np.int64))
    if kit["model"] == "cnn4":
        model = Cnn4()
    else:
        net = kit.get("network") or {}
        model = ResNet(net.get("stem_filters", 64), net.get("stage_filters", (64, 128, 256, 512)),
                       net.get("blocks_per_stage", 2))
    for m in model.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            if kit["model"] == "cnn4":
                nn.init.xavier_uniform_(m.weight)
            else:
                nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
            nn.init.zeros_(m.bias)
    channels_last = cfg["channels_last"]
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    adam = cfg["optimizer"]["Adam"]
    kernels = [p for p in model.parameters() if p.dim() > 1]
    others = [p for p in model.parameters() if p.dim() <= 1]
    opt = torch.optim.AdamW([{"params": kernels, "weight_decay": cfg["weight_decay"]},
                             {"params": others, "weight_decay": 0.0}],
                            lr=cfg["learning_rate"], betas=(adam["beta1"], adam["beta2"]), eps=adam["eps"],
                            fused=True)
    a = cfg["augment"]
    aug = {"flip": a["horizontal_flip"], "wshift": a["width_shift"], "hshift": a["height_shift"],
           "brightness": a["brightness"] is not None, "erasing": a["erasing"] is not None}
    use_aug = a != {**a, "horizontal_flip": False, "width_shift": 0.0, "height_shift": 0.0, "zoom": 0.0,
                    "brightness": None, "erasing": None}
    gen = torch.Generator().manual_seed(kit["seed"])
    batch, n = cfg["batch_size"], x.shape[0]
    steps_per_epoch = math.ceil(n / batch)
    total = steps_per_epoch * cfg["epochs"]
    bf16 = bool(kit.get("bf16", False))

    def score():
        model.eval()
        correct = 0
        with torch.no_grad():
            for lo in range(0, 10000, 1000):
                xb = xt[lo:lo + 1000]
                if channels_last:
                    xb = xb.contiguous(memory_format=torch.channels_last)
                p = model(xb).float().softmax(-1)
                if cfg["test_time_flip"]:
                    p = (p + model(xb.flip(-1)).float().softmax(-1)) / 2
                correct += (p.argmax(1) == yt[lo:lo + 1000]).sum().item()
        model.train()
        return correct / 10000

    epochs, seconds, step = [], 0.0, 0
    for epoch in range(1, cfg["epochs"] + 1):
        order = torch.randperm(n, generator=gen)
        start = time.perf_counter()
        for lo in range(0, n, batch):
            pick = order[lo:lo + batch]
            xb, yb = x[pick], y[pick]
            if use_aug:
                xb = augment(xb, aug, gen)
            if channels_last:
                xb = xb.contiguous(memory_format=torch.channels_last)
            step += 1
            for g in opt.param_groups:
                g["lr"] = rate_at(cfg, cfg["learning_rate"], step, steps_per_epoch, total)
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                loss = F.cross_entropy(model(xb).float(), yb, label_smoothing=cfg["label_smoothing"])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        seconds += time.perf_counter() - start
        acc = score()
        print(f"pytorch {kit['model']} epoch {epoch}: {seconds:.0f} s of training, test accuracy {acc:.4f}",
              file=sys.stderr, flush=True)
        epochs.append({"epoch": epoch, "train_seconds": seconds, "test_accuracy": acc})
    print(json.dumps({"model": kit["model"], "torch": torch.__version__, "threads": torch.get_num_threads(),
                      "bf16": bf16, "epochs": epochs}, indent=2))


if __name__ == "__main__":
    main()
