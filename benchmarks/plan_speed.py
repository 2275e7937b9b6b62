"""Planning overhead of `--plan auto` on a photo, beside the restore time of the plan it chooses, in one run.

    python benchmarks/plan_speed.py [--photo FILE] [--size 1024x1024] [--degradations noise:25,haze:moderate,lowlight,clean]
        [--threads 2] [--repeats 2] [--json FILE]

For each degradation the photo (default: scikit-image's astronaut, resized to --size) is degraded
once (seeded) and restored by `AdaptiveRestorer.restore_planned` --repeats times after one
untimed warm-up (which loads the members). Reported per run, median over repeats:
classification, planning (the search on the proxy: every evaluation), running the plan on the
whole image (including the whole-image checks), and the overhead = (classify + plan) / run.
Baseline in the same run: the previous default, allinone-small alone, on the same input.
Prints numbers; no assertions.
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

from irestore import degrade
from irestore.devices import cpu_model
from irestore.io import image_to_tensor, read_image
from irestore.pipeline import load_model
from irestore.plan import AdaptiveRestorer


def photo(path: Path | None, size: tuple[int, int]) -> np.ndarray:
    if path is None:
        from skimage import data

        rgb = data.astronaut().astype(np.float32) / 255
    else:
        rgb = read_image(path).rgb
    return np.clip(cv2.resize(rgb, size, interpolation=cv2.INTER_CUBIC), 0, 1)


def time_plan(adaptive: AdaptiveRestorer, image: torch.Tensor, repeats: int) -> dict:
    adaptive.restore_planned(image)  # warm-up: loads the members the plan uses
    rows = []
    for _ in range(repeats):
        began = time.perf_counter()
        classification = adaptive.planner.classifier.classify(image)
        classified = time.perf_counter()
        plan, _, _ = adaptive.plan(image, classification=classification)
        planned = time.perf_counter()
        _, run = adaptive.planner.run(image, plan, classification)
        rows.append({"classify": classified - began, "plan": planned - classified, "run": time.perf_counter() - planned,
                     "steps": plan.spec(), "applied": ",".join(e["step"] for e in run if e["kept"]),
                     "evaluations": len(plan.evaluations)})
    return {key: float(np.median([r[key] for r in rows])) if key in ("classify", "plan", "run") else rows[-1][key]
            for key in rows[0]}


def time_alone(name: str, image: torch.Tensor, repeats: int) -> float:
    model = load_model(name, device="cpu")
    model.restore(image, generator=torch.Generator().manual_seed(0))
    seconds = []
    for i in range(repeats):
        began = time.perf_counter()
        model.restore(image, generator=torch.Generator().manual_seed(i))
        seconds.append(time.perf_counter() - began)
    return float(np.median(seconds))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--photo", type=Path)
    parser.add_argument("--size", default="1024x1024")
    parser.add_argument("--degradations", default="noise:25,haze:moderate,lowlight,clean")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    size = tuple(int(v) for v in args.size.lower().split("x"))
    clean = photo(args.photo, size)
    megapixels = size[0] * size[1] / 1e6
    print(f"plan:auto overhead, {size[0]}x{size[1]} ({megapixels:.2f} MP), cpu ({cpu_model()}, {args.threads} threads), "
          f"torch {torch.__version__}, python {platform.python_version()}, median of {args.repeats} after 1 warm-up")
    print(f"{'input':<16} {'classify s':>10} {'plan s':>7} {'run s':>7} {'overhead':>9} {'evals':>5}  {'allinone alone s':>16}  plan")
    adaptive = AdaptiveRestorer.create("auto")
    results = []
    for spec in args.degradations.split(","):
        rgb = clean if spec == "clean" else degrade.degrade(clean, spec, np.random.default_rng(0)).image
        image = image_to_tensor(rgb)
        row = time_plan(adaptive, image, args.repeats)
        row |= {"input": spec, "allinone_alone": time_alone("allinone-small", image, args.repeats)}
        row["overhead"] = (row["classify"] + row["plan"]) / row["run"] if row["applied"] else None  # nothing run: no ratio
        results.append(row)
        overhead = f"{100 * row['overhead']:.0f} %" if row["overhead"] is not None else "-"
        print(f"{spec:<16} {row['classify']:>10.2f} {row['plan']:>7.2f} {row['run']:>7.2f} {overhead:>9} {row['evaluations']:>5}  "
              f"{row['allinone_alone']:>16.2f}  {row['applied'] or '(untouched)'}", flush=True)
    if args.json:
        args.json.write_text(json.dumps({"size": size, "threads": args.threads, "rows": results}, indent=2) + "\n")


if __name__ == "__main__":
    main()
