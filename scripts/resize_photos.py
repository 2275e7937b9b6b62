"""Downscale a photo corpus so its longest side is at most --max-side (area-averaged, as PNG),
keeping the folder structure and SOURCES.csv. Training reads whole photos per sample, so a
smaller corpus trains several times faster; downscaling also averages away sensor noise and
JPEG artefacts of the originals, which would otherwise count as "clean".

    python scripts/resize_photos.py SRC DEST [--max-side 1024] [--min-factor FOLDER=F ...]

--min-factor tuxpaint-data=1.6 downscales every photo under SRC/tuxpaint-data by at least 1.6:
that package ships quality-70 JPEGs near 1024 px, whose blocks would otherwise stay in "clean"
training photos.
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

import cv2

from irestore.io import list_images, read_image, write_image


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("source", type=Path)
    parser.add_argument("dest", type=Path)
    parser.add_argument("--max-side", type=int, default=1024)
    parser.add_argument("--min-factor", action="append", default=[], metavar="FOLDER=F",
                        help="downscale photos under SRC/FOLDER by at least F (repeatable)")
    args = parser.parse_args()
    factors = {}
    for item in args.min_factor:
        folder, _, value = item.partition("=")
        try:
            factors[folder] = float(value)
        except ValueError:
            parser.error(f"--min-factor {item!r}: expected FOLDER=FACTOR, e.g. tuxpaint-data=1.6")
    for path in list_images(args.source):
        out = (args.dest / path.relative_to(args.source)).with_suffix(".png")
        if out.exists():
            continue
        image = read_image(path)
        rgb = image.rgb
        least = factors.get(path.relative_to(args.source).parts[0], 1.0)
        scale = min(args.max_side / max(rgb.shape[:2]), 1 / least)
        if scale < 1:
            size = (round(rgb.shape[1] * scale), round(rgb.shape[0] * scale))
            rgb = cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)
        out.parent.mkdir(parents=True, exist_ok=True)
        write_image(out, image, rgb, format="PNG")
    if (args.source / "SOURCES.csv").is_file():
        shutil.copy2(args.source / "SOURCES.csv", args.dest / "SOURCES.csv")
    print(f"{args.dest}: {len(list_images(args.dest))} photos, longest side <= {args.max_side}")


if __name__ == "__main__":
    main()
