"""Inference speed of each shipped model at fp32 and bf16 on this machine's CPU, side by side, and
how far the bf16 output lies from the fp32 one (PSNR), in one run.

    python benchmarks/precision_speed.py [--size 512] [--threads 2] [--repeats 2] [--models a,b]

Each model restores the same photo (scikit-image's astronaut, resized, with mild noise) once
untimed, then --repeats times; the median seconds per megapixel is printed. `restore --precision
auto` takes its CPU choice from these numbers. Prints numbers; no assertions.
"""

from __future__ import annotations

import argparse
import statistics
import time

import cv2
import numpy as np
import torch

from irestore.devices import cpu_has_native_bf16, cpu_model
from irestore.evaluate.metrics import psnr
from irestore.io import image_to_tensor
from irestore.pipeline import load_model

MODELS = ("allinone-small", "derain", "lowlight", "ffdnet-color")


def photo(size: int) -> torch.Tensor:
    from skimage import data

    rgb = cv2.resize(data.astronaut(), (size, size), interpolation=cv2.INTER_AREA).astype(np.float32) / 255
    noisy = np.clip(rgb + np.random.default_rng(0).normal(0, 0.05, rgb.shape), 0, 1).astype(np.float32)
    return image_to_tensor(noisy)


def timed(model, image: torch.Tensor, repeats: int) -> tuple[float, torch.Tensor]:
    run = lambda: model.restore(image, prompt="remove the noise", tile=None, generator=torch.Generator().manual_seed(0))
    out = run()  # warm-up (and the output compared)
    seconds = []
    for _ in range(repeats):
        began = time.perf_counter()
        run()
        seconds.append(time.perf_counter() - began)
    return statistics.median(seconds), out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--models", default=",".join(MODELS))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    image = photo(args.size)
    megapixels = args.size * args.size / 1e6
    print(f"CPU: {cpu_model()} (native bf16: {cpu_has_native_bf16()}), {args.threads} threads, {args.size}x{args.size}")
    print(f"{'model':16} {'fp32 s/MP':>10} {'bf16 s/MP':>10} {'bf16/fp32':>10} {'bf16 vs fp32 PSNR':>18}")
    for name in args.models.split(","):
        fp32_s, fp32_out = timed(load_model(name, device="cpu", precision="fp32"), image, args.repeats)
        bf16_s, bf16_out = timed(load_model(name, device="cpu", precision="bf16"), image, args.repeats)
        gap = psnr(bf16_out[0].permute(1, 2, 0).numpy(), fp32_out[0].permute(1, 2, 0).numpy())
        print(f"{name:16} {fp32_s / megapixels:10.2f} {bf16_s / megapixels:10.2f} {bf16_s / fp32_s:10.2f} {gap:15.1f} dB")


if __name__ == "__main__":
    main()
