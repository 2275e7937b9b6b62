"""Compose a before/after figure: one row per image, degraded | restored | clean reference,
each panel scaled to a common height and labelled with its PSNR against the reference.

    python scripts/make_strip.py sample_images OUT_DIR sample_references docs/before_after.png [--height 192]

Restored files are matched to the degraded ones by stem (`irestore restore` writes PNG for
PNG input and keeps JPEG for JPEG input); references by stem too.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np

from irestore.evaluate.metrics import psnr
from irestore.io import Image, list_images, read_image, write_image


def by_stem(folder: Path) -> dict[str, Path]:
    return {path.stem: path for path in list_images(folder)}


def panel(rgb: np.ndarray, height: int, text: str) -> np.ndarray:
    width = round(rgb.shape[1] * height / rgb.shape[0])
    out = cv2.resize(rgb, (width, height), interpolation=cv2.INTER_AREA if rgb.shape[0] > height else cv2.INTER_CUBIC)
    out = np.ascontiguousarray((out.clip(0, 1) * 255).round().astype(np.uint8))
    cv2.rectangle(out, (0, 0), (width, 18), (0, 0, 0), thickness=-1)
    cv2.putText(out, text, (4, 13), cv2.FONT_HERSHEY_SIMPLEX, 0.42, (255, 255, 255), 1, cv2.LINE_AA)
    return out.astype(np.float32) / 255


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    for name in ("degraded", "restored", "references"):
        parser.add_argument(name, type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--height", type=int, default=192)
    args = parser.parse_args()
    degraded, restored, references = by_stem(args.degraded), by_stem(args.restored), by_stem(args.references)
    rows = []
    for stem in sorted(degraded):
        if stem not in restored or stem not in references:
            print(f"skipping {stem}: no restored output or reference")
            continue
        lq, out, gt = (read_image(d[stem]).rgb for d in (degraded, restored, references))
        rows.append(np.concatenate([
            panel(lq, args.height, f"{stem}  {psnr(lq, gt):.2f} dB"),
            panel(out, args.height, f"restored  {psnr(out, gt):.2f} dB"),
            panel(gt, args.height, "reference"),
        ], axis=1))
    width = max(row.shape[1] for row in rows)
    rows = [np.pad(row, ((0, 4), (0, width - row.shape[1]), (0, 0)), constant_values=1.0) for row in rows]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    figure = np.concatenate(rows, axis=0)
    write_image(args.out, Image(rgb=figure), format="JPEG" if args.out.suffix.lower() in (".jpg", ".jpeg") else "PNG", jpeg_quality=90)
    print(f"wrote {args.out} ({figure.shape[1]}x{figure.shape[0]}, {len(rows)} rows)")


if __name__ == "__main__":
    main()
