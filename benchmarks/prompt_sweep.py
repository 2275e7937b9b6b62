"""How a text-conditioned restorer's output depends on its prompt: mean PSNR over pairs of degraded
and clean images (matched by relative path), one column per prompt, all in one run.

    python benchmarks/prompt_sweep.py dehaze LQ_DIR GT_DIR --prompts "|a photo with haze|a photo with heavy haze"

An empty prompt is written as nothing between the separators. Prints one Markdown row per
prompt, with the input's PSNR first as the baseline.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from irestore.evaluate.metrics import psnr
from irestore.io import image_to_tensor, list_images, read_image, tensor_to_rgb
from irestore.pipeline import Restorer


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model")
    parser.add_argument("lq", type=Path)
    parser.add_argument("gt", type=Path)
    parser.add_argument("--prompts", default="|a photo with haze|a photo with light haze|a photo with moderate haze|a photo with heavy haze")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    prompts = args.prompts.split("|")
    pairs = [(path, args.gt / path.relative_to(args.lq)) for path in list_images(args.lq)]
    if not pairs:
        parser.error(f"no images under {args.lq}")
    restorer = Restorer.from_pretrained(args.model, device="cpu")
    scores = {prompt: [] for prompt in ["(input)", *prompts]}
    for lq, gt in pairs:
        degraded, clean = read_image(lq).rgb, read_image(gt).rgb
        scores["(input)"].append(psnr(degraded, clean))
        for prompt in prompts:
            scores[prompt].append(psnr(tensor_to_rgb(restorer.restore(image_to_tensor(degraded), prompt=prompt)), clean))
    print(f"{args.model} on {len(pairs)} pairs of {args.lq}")
    print("| prompt | mean PSNR (dB) |\n|---|---:|")
    for prompt, values in scores.items():
        print(f"| {prompt or '(empty)'} | {float(np.mean(values)):.2f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
