"""Before/after figure for the pretrained experts: JPEG removal and x4 upscaling on a held-out photo.

    python scripts/make_expert_figure.py runs/photos-val/mate-backgrounds/TwoWings.png docs/experts.jpg

Row 1: a 256 px crop saved at JPEG quality 10 | waifu2x-photo at the input's size | the clean crop.
Row 2: the crop area-downscaled 4x (shown enlarged with nearest neighbours) | bicubic x4 |
waifu2x-photo x4 | Real-ESRGAN x4plus | the clean crop. Each panel is labelled with its PSNR against
the clean crop and its BRISQUE score (no reference; lower looks more natural). The methods run
through the registry, as `irestore restore --model NAME [--scale 4]` runs them.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np

from irestore import degrade
from irestore.evaluate.brisque import Brisque
from irestore.evaluate.metrics import psnr
from irestore.io import Image, image_to_tensor, read_image, tensor_to_rgb, write_image
from irestore.restorers import Condition, create_restorer

SIDE = 256
SCALE = 4


def label(rgb: np.ndarray, text: str) -> np.ndarray:
    out = np.ascontiguousarray((rgb.clip(0, 1) * 255).round().astype(np.uint8))
    cv2.rectangle(out, (0, 0), (out.shape[1], 18), (0, 0, 0), thickness=-1)
    cv2.putText(out, text, (4, 13), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (255, 255, 255), 1, cv2.LINE_AA)
    return out.astype(np.float32) / 255


def scored(rgb: np.ndarray, clean: np.ndarray, name: str, quality: Brisque) -> np.ndarray:
    fidelity = "reference" if rgb is clean else f"{psnr(rgb, clean):.2f} dB"
    return label(rgb, f"{name} {fidelity}, BRISQUE {quality.score(rgb):.0f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("photo", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--top", type=int)
    parser.add_argument("--left", type=int)
    args = parser.parse_args()
    rgb = read_image(args.photo).rgb
    top = (rgb.shape[0] - SIDE) // 2 if args.top is None else args.top
    left = (rgb.shape[1] - SIDE) // 2 if args.left is None else args.left
    clean = np.ascontiguousarray(rgb[top : top + SIDE, left : left + SIDE]).astype(np.float32)
    quality = Brisque()

    blocky = degrade.jpeg(clean, np.random.default_rng(0), quality=10).image
    waifu2x = create_restorer("waifu2x-photo")
    dejpeg = tensor_to_rgb(waifu2x.restore(image_to_tensor(blocky), Condition(("jpeg",), {"jpeg": 10.0})))
    jpeg_row = [scored(blocky, clean, "JPEG q10", quality), scored(dejpeg, clean, "waifu2x-photo", quality),
                scored(clean, clean, "clean", quality)]

    small = cv2.resize(clean, (SIDE // SCALE, SIDE // SCALE), interpolation=cv2.INTER_AREA)
    shown = cv2.resize(small, (SIDE, SIDE), interpolation=cv2.INTER_NEAREST)
    upscaled = [("bicubic x4", "bicubic"), ("waifu2x x4", "waifu2x-photo"), ("Real-ESRGAN x4", "realesrgan-x4plus")]
    scale_row = [label(shown, f"input {SIDE // SCALE} px")]
    for text, name in upscaled:
        out = create_restorer(name).restore(image_to_tensor(small), Condition(("lowres",), target_size=(SIDE, SIDE)))
        scale_row.append(scored(tensor_to_rgb(out), clean, text, quality))
    scale_row.append(scored(clean, clean, "clean", quality))

    width = SIDE * len(scale_row)
    rows = [np.concatenate(row, axis=1) for row in (jpeg_row, scale_row)]
    rows = [np.pad(row, ((0, 4), (0, width - row.shape[1]), (0, 0)), constant_values=1.0) for row in rows]
    figure = np.concatenate(rows, axis=0)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    write_image(args.out, Image(rgb=figure), format="JPEG", jpeg_quality=92)
    print(f"wrote {args.out} ({figure.shape[1]}x{figure.shape[0]})")


if __name__ == "__main__":
    main()
