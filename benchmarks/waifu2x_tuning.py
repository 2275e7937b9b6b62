"""The measurements behind waifu2x-photo's settings, on *training* photos (never the held-out ones).

    python benchmarks/waifu2x_tuning.py levels   # JPEG quality -> noise level (LEVEL_FOR_QUALITY)
    python benchmarks/waifu2x_tuning.py halving  # the filter that brings the 2x output back (_halve)
    python benchmarks/waifu2x_tuning.py lowres   # which low-resolution factors it undoes (LOWRES_FACTORS)

Photos: those of PHOTOS (default runs/photos-1k, see the README) not in HELDOUT (runs/photos-val).
``levels`` and ``halving`` use 192/256 px centre crops of 9 photos, ``lowres`` 7 whole photos at
512 px. Prints the mean PSNR gain over the degraded input (dB); no assertions.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from irestore.degrade import jpeg, lowres
from irestore.evaluate.metrics import psnr
from irestore.io import image_to_tensor, read_image
from irestore.restorers.ported import PortedNetwork, content_size, resize_to


def training_photos(photos: Path, heldout: Path, step: int, count: int, offset: int = 0) -> list[Path]:
    held = {p.name for p in heldout.rglob("*.png")}
    return sorted(p for p in photos.rglob("*.png") if p.name not in held)[offset::step][:count]


def centre(rgb: np.ndarray, side: int) -> np.ndarray:
    top, left = (rgb.shape[0] - side) // 2, (rgb.shape[1] - side) // 2
    return np.ascontiguousarray(rgb[top : top + side, left : left + side]).astype(np.float32)


def as_rgb(tensor: torch.Tensor) -> np.ndarray:
    return tensor[0].permute(1, 2, 0).numpy()


def levels(paths: list[Path]) -> None:
    nets = {level: PortedNetwork(f"waifu2x-photo-noise{level}") for level in range(4)}
    rng = np.random.default_rng(0)
    for quality in (5, 10, 20, 30, 45, 60, 75, 90):
        rows = []
        for path in paths:
            clean = centre(read_image(path).rgb, 192)
            lq = jpeg(clean, rng, quality=quality).image
            rows.append([psnr(as_rgb(F.avg_pool2d(nets[lv].run(image_to_tensor(lq), None), 2)), clean) - psnr(lq, clean)
                         for lv in range(4)])
        print(f"q{quality:3d} " + " ".join(f"level {lv} {g:+.2f}" for lv, g in enumerate(np.mean(rows, 0))), flush=True)


HALVING = {
    "box": lambda y: F.avg_pool2d(y, 2),
    "bicubic-aa": lambda y: F.interpolate(y, scale_factor=0.5, mode="bicubic", antialias=True, align_corners=False),
    "bilinear-aa": lambda y: F.interpolate(y, scale_factor=0.5, mode="bilinear", antialias=True, align_corners=False),
}


def halving(paths: list[Path]) -> None:
    rng = np.random.default_rng(0)
    for quality, level in ((10, 3), (30, 3), (60, 3), (90, 0)):
        net, gains = PortedNetwork(f"waifu2x-photo-noise{level}"), {name: [] for name in HALVING}
        for path in paths:
            clean = centre(read_image(path).rgb, 256)
            lq = jpeg(clean, rng, quality=quality).image
            up = net.run(image_to_tensor(lq), None)
            for name, shrink in HALVING.items():
                gains[name].append(psnr(as_rgb(shrink(up).clamp(0, 1)), clean) - psnr(lq, clean))
        print(f"q{quality} level {level}: " + " ".join(f"{n} {np.mean(g):+.3f}" for n, g in gains.items()), flush=True)


def _exact(net: PortedNetwork, image: torch.Tensor, factor: float) -> torch.Tensor:
    out = net.run(resize_to(image, content_size(image, factor)), None)
    while out.shape[-1] < image.shape[-1]:
        out = net.run(out, None)
    return resize_to(out, image.shape[-2:])


def _power_of_two(net: PortedNetwork, image: torch.Tensor, factor: float) -> torch.Tensor:
    k = 2 ** int(math.floor(math.log2(max(factor, 1.0)) + 1e-6))
    out = resize_to(image, content_size(image, k))
    for _ in range(int(math.log2(k))):
        out = net.run(out, None)
    return resize_to(out, image.shape[-2:])


def low_resolution(paths: list[Path]) -> None:
    from irestore.registry import create_classifier

    net, classifier = PortedNetwork("waifu2x-photo-scale2x"), create_classifier("degnet")
    for scale in (2, 3, 4):
        rows, estimates = [], []
        for path in paths:
            rgb = read_image(path).rgb
            ratio = 512 / max(rgb.shape[:2])
            clean = np.clip(cv2.resize(rgb, (round(rgb.shape[1] * ratio), round(rgb.shape[0] * ratio)),
                                       interpolation=cv2.INTER_AREA), 0, 1).astype(np.float32)
            lq = image_to_tensor(lowres(clean, np.random.default_rng(0), scale=scale).image)
            found = classifier.classify(lq)
            estimate = found.severities["lowres"]
            estimates.append(f"{estimate:.2f}@p{found.probabilities['lowres']:.2f}")
            base = psnr(as_rgb(lq), clean)
            rows.append([psnr(as_rgb(f(net, lq, s)), clean) - base
                         for f, s in ((_exact, scale), (_power_of_two, scale), (_power_of_two, estimate))])
        gain = np.mean(rows, 0)
        print(f"x{scale}: content's size {gain[0]:+.2f}, power-of-two shrink {gain[1]:+.2f}, "
              f"with the classifier's factor {gain[2]:+.2f}; estimates {', '.join(estimates)}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("experiment", choices=("levels", "halving", "lowres"))
    parser.add_argument("--photos", type=Path, default=Path("runs/photos-1k"))
    parser.add_argument("--heldout", type=Path, default=Path("runs/photos-val"))
    args = parser.parse_args()
    torch.set_num_threads(1)
    if args.experiment == "lowres":
        low_resolution(training_photos(args.photos, args.heldout, 4, 7))
    else:
        (levels if args.experiment == "levels" else halving)(training_photos(args.photos, args.heldout, 3, 9))


if __name__ == "__main__":
    main()
