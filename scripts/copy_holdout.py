"""Copy the photos that a `folder:` dataset holds out for validation (chosen by photo, from
a hash of the relative path, exactly as `irestore train` chooses them) into DEST, keeping
relative paths, so benchmarks can run on photos training never saw.

    python scripts/copy_holdout.py PHOTOS DEST [--val-fraction 0.2]
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

from irestore.data.layouts import find_pairs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("photos", type=Path)
    parser.add_argument("dest", type=Path)
    parser.add_argument("--val-fraction", type=float, default=0.2)
    args = parser.parse_args()
    pairs = find_pairs(f"folder:{args.photos}", split="val", val_fraction=args.val_fraction)
    for pair in pairs:
        out = args.dest / pair.key
        out.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(pair.gt, out)
        print(pair.key)
    print(f"{len(pairs)} held-out photos in {args.dest}")


if __name__ == "__main__":
    main()
