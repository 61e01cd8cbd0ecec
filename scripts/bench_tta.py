#!/usr/bin/env python3
"""`make bench-tta`: time to accuracy. For each network, `fmnist bench tta` trains it with the quick
profile's recipe and scores the 10,000 test images after every epoch with the clock stopped; then
`scripts/bench_tta_peer.py` trains the same network with the same recipe, on the same images, in PyTorch.
Prints the training seconds each took to reach the network's threshold (CNN 0.93, ResNet 0.91) or
"not reached", and every epoch's figures. Minutes per network: keep the machine otherwise idle."""
import json
import subprocess
import sys
import tempfile
from pathlib import Path

here = Path(__file__).resolve().parent
THRESHOLDS = {"cnn4": 0.93, "resnet": 0.91}
models = sys.argv[1:] or list(THRESHOLDS)


def reached(run, threshold):
    hit = next((e for e in run["epochs"] if e["test_accuracy"] >= threshold), None)
    return f"{hit['train_seconds']:.0f} s (epoch {hit['epoch']})" if hit else "not reached"


cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "unknown CPU")
print(f"  time to accuracy, quick recipe, {cpu}: training seconds until the 10,000 test images reach the threshold "
      f"(scored after every epoch, clock stopped)")
for model in models:
    kit_text = subprocess.run(["fmnist", "bench", "tta", "--model", model], check=True, capture_output=True,
                              text=True).stdout
    kit = json.loads(kit_text)
    with tempfile.NamedTemporaryFile("w", suffix=".json") as f:
        f.write(kit_text)
        f.flush()
        peer = json.loads(subprocess.run([sys.executable, str(here / "bench_tta_peer.py"), f.name], check=True,
                                         capture_output=True, text=True).stdout)
    t = THRESHOLDS[model]
    print(f"  {model}: {kit['config']['epochs']} epochs, batch {kit['config']['batch_size']}, "
          f"{kit['train_images']} training images, {kit['threads']} threads, training steps in "
          f"{'bf16' if kit.get('bf16') else 'fp32'} (--precision {kit['config']['precision']})")
    print(f"    to {t}: kit {reached(kit, t)}, PyTorch {peer['torch']} eager {reached(peer, t)}")
    for k, p in zip(kit["epochs"], peer["epochs"]):
        print(f"    epoch {k['epoch']:>2}: kit {k['train_seconds']:>6.0f} s {k['test_accuracy']:.4f}   "
              f"PyTorch {p['train_seconds']:>6.0f} s {p['test_accuracy']:.4f}")
