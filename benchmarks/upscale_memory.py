"""Peak memory and time of the x4 upscalers on one input, whole and tiled, side by side in one run.

    python benchmarks/upscale_memory.py [--size 1000x1000] [--tiles none,256] [--models realesrgan-x4plus]

Each (model, tile) runs in a fresh subprocess (so each peak is its own): the photo (scikit-image's
astronaut resized to --size) is upscaled x4 through the production path (create_restorer ->
RealESRGAN -> PortedNetwork -> tiling), and the process's peak resident memory (ru_maxrss) is
printed beside the memory of the same process after loading the model, with the seconds it took.
Prints numbers; no assertions.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

CHILD = r"""
import json, resource, sys, time
import cv2, numpy as np, torch
from skimage import data
from irestore.io import image_to_tensor
from irestore.restorers import Condition, RunSettings, create_restorer
name, width, height, tile, threads = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], int(sys.argv[5])
torch.set_num_threads(threads)
rgb = cv2.resize(data.astronaut().astype(np.float32) / 255, (width, height), interpolation=cv2.INTER_AREA)
image = image_to_tensor(np.clip(rgb, 0, 1))
method = create_restorer(name)
loaded = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
began = time.perf_counter()
out = method.restore(image, Condition(target_size=(height * 4, width * 4)), RunSettings(tile=None if tile == "none" else int(tile)))
seconds = time.perf_counter() - began
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({"loaded_mb": loaded, "peak_mb": peak, "seconds": seconds, "out": list(out.shape[-2:])}))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", default="1000x1000")
    parser.add_argument("--tiles", default="none,256")
    parser.add_argument("--models", default="realesrgan-x4plus,realesr-animevideov3")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    width, height = (int(v) for v in args.size.lower().split("x"))
    print(f"x4 upscaling of a {width}x{height} input ({width * height / 1e6:.2f} MP) to {4 * width}x{4 * height}, "
          f"{args.threads} thread(s), one subprocess per row")
    print(f"{'model':<22} {'tile':>6} {'after load MB':>14} {'peak MB':>9} {'+MB':>8} {'seconds':>9} {'s/MP in':>8}")
    for name in args.models.split(","):
        for tile in args.tiles.split(","):
            run = subprocess.run([sys.executable, "-c", CHILD, name, str(width), str(height), tile, str(args.threads)],
                                 capture_output=True, text=True)
            if run.returncode != 0:
                print(f"{name:<22} {tile:>6} failed: {run.stderr.strip().splitlines()[-1] if run.stderr else run.returncode}")
                continue
            row = json.loads(run.stdout.strip().splitlines()[-1])
            extra = row["peak_mb"] - row["loaded_mb"]
            print(f"{name:<22} {tile:>6} {row['loaded_mb']:>14.0f} {row['peak_mb']:>9.0f} {extra:>8.0f} {row['seconds']:>9.1f} "
                  f"{row['seconds'] / (width * height / 1e6):>8.1f}", flush=True)


if __name__ == "__main__":
    main()
