#!/usr/bin/env python3
"""Training throughput of the kit next to the same network in plain PyTorch eager (used by
`make bench`). Runs `fmnist bench train` and `scripts/bench_pytorch.py` one after the other, with the
same batch size, steps and threads, and prints images/s and the kit / PyTorch ratio."""
import json
import subprocess
import sys
from pathlib import Path

here = Path(__file__).resolve().parent
steps = sys.argv[1] if len(sys.argv) > 1 else "20"
models = sys.argv[2:] or ["cnn4", "resnet"]
print(f"  {'model':<8} {'batch':>5} {'':<9} {'kit img/s':>10} {'PyTorch img/s':>14} {'ratio':>6}   target ratio >= 1.0; augmentation <= 10% of a step")
for model in models:
    kit = json.loads(subprocess.run(["fmnist", "bench", "train", "--model", model, "--steps", steps, "--json"],
                                    check=True, capture_output=True, text=True).stdout)
    peer = json.loads(subprocess.run([sys.executable, str(here / "bench_pytorch.py"), "--model", model, "--steps", steps,
                                      "--threads", str(kit["threads"]), "--batch-size", str(kit["batch_size"]), "--json"],
                                     check=True, capture_output=True, text=True).stdout)
    for key, label in [("images_per_s_noaug", "no aug"), ("images_per_s_aug", "with aug")]:
        ratio = kit[key] / peer[key]
        verdict = "met" if ratio >= 1.0 else "MISSED"
        print(f"  {model:<8} {kit['batch_size']:>5} {label:<9} {kit[key]:>10.0f} {peer[key]:>14.0f} {ratio:>6.2f} ({verdict})")
    share = kit["augmentation_share"]
    print(f"  {model:<8} augmentation share of a step: kit {share * 100:.1f}% "
          f"({'met' if share <= 0.10 else 'MISSED'}), PyTorch {peer['augmentation_share'] * 100:.1f}%; "
          f"{kit['threads']} threads, {kit['device']}, torch {peer['torch']}")
