"""Train the calibrated image-level head of the degradation classifier (recipe for degnet-default).

    python scripts/train_classifier.py cache CACHE_DIR PHOTO_DIR [--exclude HELD_OUT_DIR] [--backbone PATH]
        [--samples N] [--seed S] [--workers 2]
    python scripts/train_classifier.py fit OUT_DIR CACHE_DIR [CACHE_DIR ...] [--backbone PATH] [--epochs 60] [--measures N]

`cache` computes seeded feature chunks (resumable: rerun it after an interruption); `fit`
trains the head on one or more caches (of different photo folders, say), calibrates it on the held-out photo group, and writes a classifier
checkpoint folder (the backbone's DegNet weights unchanged, plus the head, thresholds and the
calibration report). See irestore.training.classifier_head.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from irestore.training.classifier_head import CacheSettings, build_cache, train_head


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="stage", required=True)
    cache = sub.add_parser("cache")
    cache.add_argument("cache", type=Path)
    cache.add_argument("photos", type=Path)
    cache.add_argument("--exclude", type=Path, help="leave out photos whose relative path exists here (the held-out photos)")
    cache.add_argument("--backbone", default="degnet-default")
    cache.add_argument("--samples", type=int, default=CacheSettings.samples)
    cache.add_argument("--seed", type=int, default=0)
    cache.add_argument("--workers", type=int, default=2)
    fit = sub.add_parser("fit")
    fit.add_argument("out", type=Path)
    fit.add_argument("caches", type=Path, nargs="+")
    fit.add_argument("--backbone", default="degnet-default")
    fit.add_argument("--epochs", type=int, default=60)
    fit.add_argument("--measures", type=int, help="train on the first N measurements only (default: all the caches hold)")
    args = parser.parse_args()
    if args.stage == "cache":
        build_cache(args.cache, args.photos, args.backbone, CacheSettings(samples=args.samples, seed=args.seed), args.workers, args.exclude)
    else:
        train_head(args.caches, args.backbone, args.out, epochs=args.epochs, measures=args.measures)


if __name__ == "__main__":
    main()
