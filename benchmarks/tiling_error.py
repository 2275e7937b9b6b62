"""How far tiled restoration is from untiled, per shipped model, tile size and overlap.

    python benchmarks/tiling_error.py PHOTO [--models allinone-small,derain] [--size 768]
        [--tiles 256,384] [--overlaps 0,16,32,64,96] [--threads 2]

A local network (receptive radius <= overlap/4) gives exactly the untiled result
(tests/diffusion/test_tiling.py). The shipped networks are not local: ERUNet's GRN and linear attention
and M3UNet's attention see the whole input, so a tile sees other statistics than the whole
image. This measures the gap on a real photo, with rain added (irestore.degrade, seeded): PSNR
of tiled against untiled output (higher is closer; inf = identical), the largest absolute
difference in 8-bit levels, and the PSNR of each against the clean photo. Prints numbers; no
assertions.
"""

from __future__ import annotations

import argparse
import math

import cv2
import numpy as np
import torch

from irestore import degrade
from irestore.evaluate.metrics import psnr
from irestore.io import image_to_tensor, read_image, tensor_to_rgb
from irestore.pipeline import Restorer


def _photo(path: str, size: int) -> np.ndarray:
    image = read_image(path).rgb
    h, w = image.shape[:2]
    scale = size / max(h, w)
    return cv2.resize(image, (round(w * scale), round(h * scale)), interpolation=cv2.INTER_AREA)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("photo")
    parser.add_argument("--models", default="allinone-small,derain")
    parser.add_argument("--size", type=int, default=768)
    parser.add_argument("--tiles", default="256,384")
    parser.add_argument("--overlaps", default="0,16,32,64,96")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    clean = _photo(args.photo, args.size)
    rainy = degrade.DEGRADATIONS["rain"](clean, np.random.default_rng(0), severity="moderate").image
    lq = image_to_tensor(rainy)
    print(f"{args.photo} at {clean.shape[1]}x{clean.shape[0]}, moderate rain; input {psnr(rainy, clean):.2f} dB")
    print(f"{'model':16s} {'tile':>5s} {'overlap':>7s} {'tiled vs untiled dB':>19s} {'max |diff| (levels)':>19s} {'vs clean dB':>11s}")
    for name in args.models.split(","):
        restorer = Restorer.from_pretrained(name, device="cpu")

        def run(tile: int | None, overlap: int = 32) -> np.ndarray:
            out = restorer.restore(lq, prompt="a photo with rain streaks", tile=tile, tile_overlap=overlap,
                                   generator=torch.Generator().manual_seed(0))
            return tensor_to_rgb(out)

        whole = run(None)
        print(f"{name:16s} {'none':>5s} {'':>7s} {'':>19s} {'':>19s} {psnr(whole, clean):11.2f}")
        for tile in map(int, args.tiles.split(",")):
            for overlap in map(int, args.overlaps.split(",")):
                if overlap >= tile:
                    continue
                tiled = run(tile, overlap)
                gap = psnr(tiled, whole)
                worst = float(np.abs(tiled.astype(np.float64) - whole).max() * 255)
                shown = "inf" if math.isinf(gap) else f"{gap:.2f}"
                print(f"{name:16s} {tile:5d} {overlap:7d} {shown:>19s} {worst:19.1f} {psnr(tiled, clean):11.2f}", flush=True)


if __name__ == "__main__":
    main()
