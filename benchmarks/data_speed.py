"""Training-sample throughput of `build_dataset` on a folder of photos (e.g. scripts/fetch_photos.sh DEST).

    python benchmarks/data_speed.py /work/photos [--crop 256] [--samples 64] [--workers 0,2]
        [--cache-mb 2048] [--degradations noise:0-50,blur,rain,haze,lowlight,jpeg,mix]

Rows: samples/s of the dataset in the main process and through a DataLoader with N worker
processes (batch 8), and a baseline that does what a naive loader does: decode the whole photo
with irestore.io.read_image, degrade the whole photo, then crop. The pixel-cache row keeps
decoded photos in memory (`cache_mb`, as training does) and is timed once every photo has been
decoded, which is the state for all but the first pass over a training set. One torch/OpenCV
thread per process. Prints numbers only: no assertions, no thresholds.
"""

from __future__ import annotations

import argparse
import os
import platform
import time

import cv2
import numpy as np
import torch
from torch.utils.data import DataLoader

from irestore.data import build_dataset
from irestore.degrade import degrade
from irestore.io import read_image

FOLDER_SPEC = "noise:0-50,blur,rain,haze,lowlight,jpeg,mix"


def per_second(count: int, start: float) -> float:
    return count / (time.perf_counter() - start)


def dataset_rate(dataset, samples: int) -> float:
    start = time.perf_counter()
    for i in range(samples):
        dataset[i]
    return per_second(samples, start)


def loader_rate(dataset, samples: int, workers: int) -> float:
    loader = DataLoader(dataset, batch_size=8, num_workers=workers, persistent_workers=False)
    start = time.perf_counter()
    seen = 0
    for batch in loader:
        seen += len(batch["key"])
    return per_second(seen, start)


def naive_rate(dataset, samples: int, crop: int, spec: str) -> float:
    start = time.perf_counter()
    for i in range(samples):
        pair = dataset.pairs[i % len(dataset.pairs)]
        rng = np.random.default_rng([0, 0, i])
        image = read_image(pair.gt).rgb
        degraded = degrade(image, spec, rng).image
        y = int(rng.integers(max(image.shape[0] - crop, 0) + 1))
        x = int(rng.integers(max(image.shape[1] - crop, 0) + 1))
        degraded[y:y + crop, x:x + crop].copy()
    return per_second(samples, start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folder")
    parser.add_argument("--crop", type=int, default=256)
    parser.add_argument("--samples", type=int, default=64)
    parser.add_argument("--workers", default="0,2")
    parser.add_argument("--degradations", default=FOLDER_SPEC)
    parser.add_argument("--cache-mb", type=float, default=2048.0)
    args = parser.parse_args()
    torch.set_num_threads(1)
    cv2.setNumThreads(1)
    dataset = build_dataset(f"folder:{args.folder}", split="all", crop=args.crop, augment=True,
                            degradations=args.degradations, length=args.samples)
    megapixels = np.mean([np.prod(cv2.imread(str(p.gt), cv2.IMREAD_REDUCED_GRAYSCALE_8).shape) * 64
                          for p in dataset.pairs]) / 1e6
    print(f"# {len(dataset.pairs)} photos, mean {megapixels:.1f} MP; crop {args.crop}; {args.degradations}")
    print(f"# {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__}")
    print(f"{'loader':<40} {'samples/s':>10}")
    naive_samples = max(args.samples // 4, 4)
    print(f"{'baseline: read_image + degrade whole':<40} {naive_rate(dataset, naive_samples, args.crop, args.degradations):>10.2f}")
    print(f"{'build_dataset, main process':<40} {dataset_rate(dataset, args.samples):>10.2f}")
    cached = build_dataset(f"folder:{args.folder}", split="all", crop=args.crop, augment=True,
                           degradations=args.degradations, length=args.samples, cache_mb=args.cache_mb)
    for pair in cached.pairs:  # warm: every photo decoded once
        cached.pixel_cache.read(pair.gt)
    label = f"  + pixel cache ({len(cached.pixel_cache)}/{len(cached.pairs)} photos kept)"
    print(f"{label:<40} {dataset_rate(cached, args.samples):>10.2f}")
    for workers in (int(w) for w in args.workers.split(",")):
        if workers:
            print(f"{f'DataLoader, {workers} workers, batch 8':<40} {loader_rate(dataset, args.samples, workers):>10.2f}")


if __name__ == "__main__":
    main()
