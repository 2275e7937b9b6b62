"""CPU cost (s/MP) of every registered restoration method, beside the s/MP its card declares, in one run.

    python benchmarks/pool_speed.py [--size 512x512] [--threads 1] [--repeats 3] [--methods a,b,...]

Each method restores the same degraded photo (scikit-image's astronaut resized to --size, with the
degradation the method fixes, seeded) --repeats times after one untimed warm-up; the median is
reported with the card's value, so a card that no longer tells the truth shows. Non-blind methods
get the true parameters, as in the benchmark. Forms that need a checkpoint or a plan are left out.
Prints numbers; no assertions.
"""

from __future__ import annotations

import argparse
import time

import cv2
import numpy as np
import torch

from irestore import degrade
from irestore.devices import cpu_model
from irestore.io import image_to_tensor
from irestore.restorers import Condition, Degradation, create_restorer, list_restorers

SPEC_FOR = {"noise": "noise:25", "haze": "haze:moderate", "lowlight": "lowlight:moderate", "motion_blur": "motion:moderate",
            "defocus_blur": "defocus:moderate", "rain": "rain:moderate", "jpeg": "jpeg:10", "lowres": "lowres:2"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", default="512x512")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--methods")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    from skimage import data

    width, height = (int(v) for v in args.size.lower().split("x"))
    clean = np.clip(cv2.resize(data.astronaut().astype(np.float32) / 255, (width, height), interpolation=cv2.INTER_AREA), 0, 1)
    names = args.methods.split(",") if args.methods else [i.name for i in list_restorers() if not i.prefix]
    megapixels = width * height / 1e6
    print(f"restoration-method cost, {width}x{height} ({megapixels:.2f} MP), cpu ({cpu_model()}), {args.threads} thread(s), "
          f"median of {args.repeats} after 1 warm-up")
    print(f"{'method':<16} {'input':<18} {'median s':>9} {'s/MP':>8} {'card s/MP':>10}")
    for name in names:
        method = create_restorer(name)
        spec = SPEC_FOR[next(iter(method.card.fixes), "noise")]
        made = degrade.degrade(clean, spec, np.random.default_rng(0))
        family = degrade.family_of(made.params["type"])
        condition = Condition.from_degradation(Degradation(family, made.params, made.description, clean.shape[:2]))
        lq = made.image
        if method.card.changes_size:  # an upscaler is timed on the small input it gets in practice
            lq = cv2.resize(lq, (width // 2, height // 2), interpolation=cv2.INTER_AREA)
        image = image_to_tensor(lq)
        method.restore(image, condition)
        seconds = []
        for _ in range(args.repeats):
            began = time.perf_counter()
            method.restore(image, condition)
            seconds.append(time.perf_counter() - began)
        median = float(np.median(seconds))
        input_mp = image.shape[-1] * image.shape[-2] / 1e6
        card = method.card.s_per_mp
        print(f"{name:<16} {spec:<18} {median:>9.3f} {median / input_mp:>8.2f} {card if card is not None else '-':>10}", flush=True)


if __name__ == "__main__":
    main()
