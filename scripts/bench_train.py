#!/usr/bin/env python3
"""Training throughput of the kit next to the same network in PyTorch (used by `make bench`): plain eager
(its default Adam and memory layout, the code a PyTorch user writes), eager with the tricks the kit uses
(fused Adam, and channels-last where the kit uses it), and that one under torch.compile (inductor). Runs
`fmnist bench train` and `scripts/bench_pytorch.py` in turn, in rounds, with the same batch size, steps and
threads, and prints images/s and the kit's ratio to the best of the three peers (the target: >= 1.0)."""
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


ROUNDS = 2
print(f"  {ROUNDS} rounds, the kit and its three PyTorch peers in turn in each (best round kept), so that the machine's "
      f"noise hits all of them alike; torch.compile's warm-up is printed apart and kept out of its throughput")
print(f"  {'model':<8} {'batch':>5} {'':<9} {'kit':>6} {'eager':>6} {'fused':>6} {'compiled':>8}   "
      f"ratio to the best peer (target >= 1.0); augmentation <= 10% of a step")
native_bf16 = any(f in open("/proc/cpuinfo").read().split() for f in ("avx512_bf16", "amx_bf16"))
for model in models:
    runs = {"kit": [], "eager": [], "fused": [], "compiled": []}
    for _ in range(ROUNDS):
        kit = json.loads(subprocess.run(["fmnist", "bench", "train", "--model", model, "--steps", steps, "--json"],
                                        check=True, capture_output=True, text=True).stdout)
        tricks = ["--fused-adam"] + (["--channels-last"] if kit["channels_last"] else [])
        runs["kit"].append(kit)
        runs["eager"].append(peer(model, kit))
        runs["fused"].append(peer(model, kit, *tricks))
        runs["compiled"].append(peer(model, kit, *tricks, "--compile"))
    best = {name: {key: max(r[key] for r in rs) for key in ("images_per_s_noaug", "images_per_s_aug")}
            for name, rs in runs.items()}
    kit = runs["kit"][0]
    for key, label in [("images_per_s_noaug", "no aug"), ("images_per_s_aug", "with aug")]:
        top = max(best[p][key] for p in ("eager", "fused", "compiled"))
        ratio = best["kit"][key] / top
        print(f"  {model:<8} {kit['batch_size']:>5} {label:<9} {best['kit'][key]:>6.0f} {best['eager'][key]:>6.0f} "
              f"{best['fused'][key]:>6.0f} {best['compiled'][key]:>8.0f}   {ratio:.2f} ({'met' if ratio >= 1.0 else 'MISSED'}); "
              f"to eager {best['kit'][key] / best['eager'][key]:.2f}")
    compile_s = ", ".join(f"{r['compile_seconds']:.0f}" for r in runs["compiled"])
    share = min(r["augmentation_share"] for r in runs["kit"])
    layout = "channels-last" if kit["channels_last"] else "contiguous"
    tricks = "fused Adam" + (" + channels-last" if kit["channels_last"] else "")
    print(f"  {model:<8} fused and compiled peers: {tricks}; compile warm-up {compile_s} s per round; "
          f"augmentation share of a kit step {share * 100:.1f}% ({'met' if share <= 0.10 else 'MISSED'}); "
          f"kit layout {layout}; {kit['threads']} threads, {kit['device']}, torch {runs['eager'][0]['torch']}")

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
