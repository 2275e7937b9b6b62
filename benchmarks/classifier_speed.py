"""Speed of degradation classification on this machine: seconds per image at 1 MP and 12 MP.

    python benchmarks/classifier_speed.py [--checkpoint PATH] [--sizes 1000x1000,4000x3000]
        [--threads 2] [--repeats 5] [--clip] [--json FILE]

Times `DegradationClassifier.classify` (8 native 256 px tiles + one resized whole view) on a
random image already in memory, median of --repeats runs after one warm-up run (wall clock
and process CPU time: on a shared machine CPU time / threads estimates a quiet run); decoding the
file is timed separately (PNG written and read back through irestore.io). Without
--checkpoint, a randomly initialised default DegNet is saved and loaded back (speed does not
depend on the weights). --clip adds the CLIP zero-shot backend with a randomly initialised
ViT-B-32 (the real architecture, no download). Baseline printed beside: one 256 px view
through the network, the unit every image costs a multiple of. Prints numbers only.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from irestore.devices import cpu_model


def parse_sizes(text: str) -> list[tuple[int, int]]:
    sizes = []
    for item in text.split(","):
        width, height = (int(v) for v in item.lower().split("x"))
        sizes.append((height, width))
    return sizes


def median_seconds(run, repeats: int) -> tuple[float, float]:
    """Median wall-clock and process-CPU seconds of ``run`` after one warm-up run. On a shared
    machine the CPU time (divided by the threads used) is the better estimate of a quiet run."""
    run()  # warm-up: allocations and kernel selection for these shapes
    wall, cpu = [], []
    for _ in range(repeats):
        began, began_cpu = time.perf_counter(), time.process_time()
        run()
        wall.append(time.perf_counter() - began)
        cpu.append(time.process_time() - began_cpu)
    return statistics.median(wall), statistics.median(cpu)


def random_degnet(folder: Path) -> Path:
    from irestore.conditioning.classifier import ClassifierInfo, save_classifier
    from irestore.models.degnet import DegNet

    torch.manual_seed(0)
    network = DegNet()
    return save_classifier(folder, network, ClassifierInfo(network=network.config, name="random-degnet"))


def decode_seconds(height: int, width: int, folder: Path, repeats: int) -> tuple[float, float]:
    from irestore.io import Image, image_to_tensor, read_image, write_image

    path = folder / f"photo_{width}x{height}.png"
    rgb = np.random.default_rng(0).random((height, width, 3), dtype=np.float32)
    write_image(path, Image(rgb=rgb), rgb)
    return median_seconds(lambda: image_to_tensor(read_image(path).rgb), max(1, repeats // 2))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint")
    parser.add_argument("--sizes", default="1000x1000,4000x3000")
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--clip", action="store_true")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    from irestore.conditioning.classifier import DegradationClassifier

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        checkpoint = args.checkpoint or random_degnet(Path(tmp) / "degnet")
        classifier = DegradationClassifier.from_pretrained(checkpoint)
        with torch.inference_mode():
            one_view, _ = median_seconds(lambda: classifier.network(torch.rand(1, 3, 256, 256)), args.repeats)
        backends = [("degnet", classifier)]
        if args.clip:
            backends.append(("clip ViT-B-32 (random)", _random_clip()))
        for height, width in parse_sizes(args.sizes):
            image = torch.rand(1, 3, height, width, generator=torch.Generator().manual_seed(0))
            decode, _ = decode_seconds(height, width, Path(tmp), args.repeats)
            for name, model in backends:
                wall, cpu = median_seconds(lambda m=model, x=image: m.classify(x), args.repeats)
                rows.append({"backend": name, "size": f"{width}x{height}", "megapixels": round(height * width / 1e6, 2),
                             "classify_s": round(wall, 4), "classify_cpu_s": round(cpu, 4), "decode_png_s": round(decode, 4)})
    report = {"cpu": cpu_model(), "threads": args.threads, "load_average": os.getloadavg(),
              "one_256px_view_s": round(one_view, 4), "rows": rows}
    print(f"cpu: {report['cpu']}, {args.threads} threads, load average {report['load_average'][0]:.2f}")
    print(f"baseline: one 256 px view through DegNet {one_view:.4f} s")
    print(f"{'backend':<24} {'size':>10} {'MP':>6} {'classify s/img':>15} {'CPU s/img':>10} {'PNG decode s':>13}")
    for row in rows:
        print(f"{row['backend']:<24} {row['size']:>10} {row['megapixels']:>6} {row['classify_s']:>15.4f} "
              f"{row['classify_cpu_s']:>10.4f} {row['decode_png_s']:>13.4f}")
    print(json.dumps(report))
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")


def _random_clip():
    import open_clip

    from irestore.conditioning.clip_zeroshot import ClipZeroShotClassifier
    from irestore.conditioning.open_clip_models import OpenClipSpec, wrap_model

    model = open_clip.create_model("ViT-B-32").eval().requires_grad_(False)
    spec = OpenClipSpec("ViT-B-32", "random.safetensors")
    return ClipZeroShotClassifier(wrap_model(model, open_clip.get_tokenizer("ViT-B-32"), spec))


if __name__ == "__main__":
    main()
