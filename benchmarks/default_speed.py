"""Wall-clock time of the default restoration settings against FFDNet, in one run.

    python benchmarks/default_speed.py [--photo FILE] [--size 1024x1024] [--threads 2]
        [--device cpu|cuda] [--repeats 3] [--models allinone-small,ffdnet-color] [--json FILE]

Each model is loaded by name with `irestore.pipeline.load_model` (as `irestore restore` does)
and restores the same photo --repeats times after one untimed warm-up; the whole
`restore()` call is timed: degradation classifier, prompt encoding (cached after the
warm-up, as in a batch), the sampler's network evaluations and tiling. The photo is
resized to --size (default: scikit-image's astronaut; the content does not change the
time), with σ=25 noise added. Prints s/MP and MP/s; no assertions.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import cv2
import numpy as np
import torch

from irestore.devices import cpu_model, resolve_device
from irestore.io import image_to_tensor, read_image
from irestore.pipeline import load_model


def test_image(photo: Path | None, size: tuple[int, int]) -> np.ndarray:
    if photo is None:
        from skimage import data

        rgb = data.astronaut().astype(np.float32) / 255
    else:
        rgb = read_image(photo).rgb
    width, height = size
    rgb = cv2.resize(rgb, (width, height), interpolation=cv2.INTER_CUBIC)
    noisy = rgb + np.random.default_rng(0).normal(0, 25 / 255, rgb.shape).astype(np.float32)
    return noisy.clip(0, 1)


def time_model(name: str, image: torch.Tensor, device: str, repeats: int) -> dict:
    model = load_model(name, device=device)
    settings = getattr(model, "sampler_settings", None)
    sampler, steps = settings(None, None) if settings else (None, None)
    model.restore(image, generator=torch.Generator().manual_seed(0))  # warm-up
    seconds = []
    for i in range(repeats):
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        start = time.perf_counter()
        model.restore(image, generator=torch.Generator().manual_seed(i))
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        seconds.append(time.perf_counter() - start)
    megapixels = image.shape[-1] * image.shape[-2] / 1e6
    best, median = min(seconds), float(np.median(seconds))
    return {"model": name, "sampler": sampler, "steps": steps, "seconds": seconds, "median_s": median,
            "s_per_mp": median / megapixels, "mp_per_s": megapixels / median, "best_s": best}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--photo", type=Path)
    parser.add_argument("--size", default="1024x1024")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--models", default="allinone-small,ffdnet-color")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    size = tuple(int(v) for v in args.size.lower().split("x"))
    image = image_to_tensor(test_image(args.photo, size))
    device = str(resolve_device(args.device))
    where = torch.cuda.get_device_name() if device.startswith("cuda") else f"{cpu_model()}, {args.threads} threads"
    print(f"default-settings restore() time, {size[0]}x{size[1]} ({image.shape[-1] * image.shape[-2] / 1e6:.2f} MP), "
          f"{device} ({where}), torch {torch.__version__}, python {platform.python_version()}, "
          f"median of {args.repeats} after 1 warm-up")
    print(f"{'model':<18} {'sampler':<10} {'steps':>5} {'median s':>9} {'s/MP':>7} {'MP/s':>7}   runs (s)")
    rows = []
    for name in args.models.split(","):
        row = time_model(name, image, device, args.repeats)
        rows.append(row)
        runs = " ".join(f"{s:.2f}" for s in row["seconds"])
        print(f"{name:<18} {row['sampler'] or '-':<10} {row['steps'] or '-':>5} {row['median_s']:>9.2f} "
              f"{row['s_per_mp']:>7.2f} {row['mp_per_s']:>7.3f}   {runs}", flush=True)
    if args.json:
        args.json.write_text(json.dumps({"device": device, "where": where, "size": size, "rows": rows}, indent=2) + "\n")


if __name__ == "__main__":
    main()
