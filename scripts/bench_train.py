#!/usr/bin/env python3
"""Training throughput of the kit next to the same network in plain PyTorch eager (used by
`make bench`). Runs `fmnist bench train` and `scripts/bench_pytorch.py` one after the other, with the
same batch size, steps and threads, and prints images/s and the kit / PyTorch ratio.

The ratio that the target reads is against plain PyTorch (its default Adam, default memory
layout): the code a PyTorch user writes. A second PyTorch row shows the peer with the same tricks
the kit uses (fused Adam, and channels-last where the kit uses it), for comparison."""
import json
import subprocess
import sys
from pathlib import Path

here = Path(__file__).resolve().parent
steps = sys.argv[1] if len(sys.argv) > 1 else "20"
models = sys.argv[2:] or ["cnn4", "resnet"]


def peer(model, kit, *extra):
    return json.loads(subprocess.run([sys.executable, str(here / "bench_pytorch.py"), "--model", model, "--steps", steps,
                                      "--threads", str(kit["threads"]), "--batch-size", str(kit["batch_size"]),
                                      "--json", *extra], check=True, capture_output=True, text=True).stdout)


print(f"  {'model':<8} {'batch':>5} {'':<9} {'kit img/s':>10} {'PyTorch img/s':>14} {'ratio':>6}   "
      f"target ratio >= 1.0; augmentation <= 10% of a step")
native_bf16 = any(f in open("/proc/cpuinfo").read().split() for f in ("avx512_bf16", "amx_bf16"))
for model in models:
    kit = json.loads(subprocess.run(["fmnist", "bench", "train", "--model", model, "--steps", steps, "--json"],
                                    check=True, capture_output=True, text=True).stdout)
    plain = peer(model, kit)
    tricks = ["--fused-adam"] + (["--channels-last"] if kit["channels_last"] else [])
    tuned = peer(model, kit, *tricks)
    for key, label in [("images_per_s_noaug", "no aug"), ("images_per_s_aug", "with aug")]:
        ratio = kit[key] / plain[key]
        verdict = "met" if ratio >= 1.0 else "MISSED"
        print(f"  {model:<8} {kit['batch_size']:>5} {label:<9} {kit[key]:>10.0f} {plain[key]:>14.0f} {ratio:>6.2f} ({verdict})"
              f"   PyTorch with {' + '.join(t.strip('-') for t in tricks)}: {tuned[key]:.0f}, ratio {kit[key] / tuned[key]:.2f}")
    share = kit["augmentation_share"]
    layout = "channels-last" if kit["channels_last"] else "contiguous"
    print(f"  {model:<8} augmentation share of a step: kit {share * 100:.1f}% "
          f"({'met' if share <= 0.10 else 'MISSED'}), PyTorch {plain['augmentation_share'] * 100:.1f}%; "
          f"kit layout {layout}; {kit['threads']} threads, {kit['device']}, torch {plain['torch']}")

print()
if not native_bf16:
    print("  bf16: skipped: this CPU has no native bf16 (no AVX-512-bf16, no AMX); libtorch emulates it there and "
          "training runs several times slower, so --precision auto keeps fp32")
else:
    doctor = json.loads(subprocess.run(["fmnist", "doctor", "--json"], check=True, capture_output=True, text=True).stdout)
    print(f"  bf16 autocast (this CPU has native bf16), against the PyTorch peer with the same tricks and bf16 autocast; "
          f"--precision auto here: {doctor['cpu']['precision_auto_on_cpu']} ({doctor['cpu']['why']})")
    for model in models:
        kit32 = json.loads(subprocess.run(["fmnist", "bench", "train", "--model", model, "--steps", steps, "--json"],
                                          check=True, capture_output=True, text=True).stdout)
        kit16 = json.loads(subprocess.run(["fmnist", "--precision", "bf16", "bench", "train", "--model", model,
                                           "--steps", steps, "--json"], check=True, capture_output=True, text=True).stdout)
        tricks = ["--fused-adam"] + (["--channels-last"] if kit16["channels_last"] else [])
        peer16 = peer(model, kit16, *tricks, "--bf16")
        for key, label in [("images_per_s_noaug", "no aug"), ("images_per_s_aug", "with aug")]:
            ratio = kit16[key] / peer16[key]
            print(f"  {model:<8} {kit16['batch_size']:>5} {label:<9} kit bf16 {kit16[key]:>6.0f} img/s (fp32 {kit32[key]:.0f}, "
                  f"x{kit16[key] / kit32[key]:.2f}); PyTorch bf16 + {' + '.join(t.strip('-') for t in tricks)} "
                  f"{peer16[key]:.0f}; ratio {ratio:.2f} ({'met' if ratio >= 1.0 else 'MISSED'})")
