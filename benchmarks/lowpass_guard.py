"""Would keeping the input's low frequencies fix a restorer's colour shifts? Measured on the
images a benchmark run saved.

    python benchmarks/lowpass_guard.py RUN_IMAGES_DIR METHOD [--sigmas 4,8,16,32]

RUN_IMAGES_DIR is a benchmark's ``images/TASK`` folder (with ``_input``, ``_gt`` and one folder per
method). For each sigma, the method's output keeps its detail above a Gaussian of that sigma and
takes the input's base below it: ``out - G(out) + G(in)``; "mean" keeps the input's per-channel
mean instead. Prints mean PSNR (dB) over the images; no assertions.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np


def _read(path: Path) -> np.ndarray:
    return cv2.imread(str(path)).astype(np.float32) / 255


def _base(image: np.ndarray, sigma: float) -> np.ndarray:
    return cv2.GaussianBlur(image, (0, 0), sigma)


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    return float(10 * np.log10(1 / np.mean((a - b) ** 2)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("images", type=Path)
    parser.add_argument("method")
    parser.add_argument("--sigmas", default="4,8,16,32")
    args = parser.parse_args()
    sigmas = [float(s) for s in args.sigmas.split(",")]
    scores: dict[str, list[float]] = {}
    outputs = sorted((args.images / args.method).rglob("*.png"))
    if not outputs:
        parser.error(f"no PNG outputs under {args.images / args.method}")
    for path in outputs:
        rel = path.relative_to(args.images / args.method)
        out, lq, gt = _read(path), _read(args.images / "_input" / rel), _read(args.images / "_gt" / rel)
        scores.setdefault("input", []).append(_psnr(lq, gt))
        scores.setdefault(args.method, []).append(_psnr(out, gt))
        for sigma in sigmas:
            kept = np.clip(out - _base(out, sigma) + _base(lq, sigma), 0, 1)
            scores.setdefault(f"low-pass sigma {sigma:g}", []).append(_psnr(kept, gt))
        shifted = np.clip(out - out.mean((0, 1)) + lq.mean((0, 1)), 0, 1)
        scores.setdefault("input's mean", []).append(_psnr(shifted, gt))
    print(f"{args.images} ({len(outputs)} images), {args.method}")
    for name, values in scores.items():
        print(f"  {name:22s} {np.mean(values):6.2f} dB")


if __name__ == "__main__":
    main()
