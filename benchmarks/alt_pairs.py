"""Write degraded/clean pairs made with the second synthesis (benchmarks/alt_synthesis.py), for
``irestore benchmark --suite pairs:LQ,GT``.

    python benchmarks/alt_pairs.py PHOTOS OUT --kinds motion,defocus [--max-side 512] [--seed 0]

For each kind, OUT/KIND/lq and OUT/KIND/gt get one PNG per photo (same file name), the photo
downscaled (area) to --max-side first so the benchmark does not crop it, and OUT/KIND/params.jsonl
the synthesis parameters. Seeds derive from --seed, the kind and the file name, so reruns write the
same pairs. Nothing is trained or tuned on these.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
import alt_synthesis  # noqa: E402

from irestore.io import IMAGE_EXTENSIONS, read_image  # noqa: E402


def prepared(path: Path, max_side: int) -> np.ndarray:
    image = read_image(path).rgb
    h, w = image.shape[:2]
    scale = max_side / max(h, w)
    if scale < 1:
        image = cv2.resize(image, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA)
    return np.round(np.clip(image, 0, 1) * 255).astype(np.uint8)


def write_png(path: Path, rgb: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)):
        raise OSError(f"could not write {path}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("photos", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--kinds", default="motion,defocus")
    parser.add_argument("--max-side", type=int, default=512)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    photos = sorted(p for p in args.photos.rglob("*") if p.suffix.lower() in IMAGE_EXTENSIONS)
    if not photos:
        parser.error(f"no photos under {args.photos}")
    for kind in args.kinds.split(","):
        records = []
        for path in photos:
            name = path.relative_to(args.photos).with_suffix(".png").as_posix().replace("/", "__")
            seed = int.from_bytes(hashlib.sha256(f"{args.seed}:{kind}:{name}".encode()).digest()[:8], "little")
            clean = prepared(path, args.max_side)
            degraded, params = alt_synthesis.degrade(clean.astype(np.float32) / 255, kind, np.random.default_rng(seed))
            write_png(args.out / kind / "gt" / name, clean)
            write_png(args.out / kind / "lq" / name, np.round(degraded * 255).astype(np.uint8))
            records.append({"file": name, **params})
        (args.out / kind / "params.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
        print(f"{kind}: {len(records)} pairs in {args.out / kind}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
