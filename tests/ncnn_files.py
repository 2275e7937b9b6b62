"""Writes small ncnn models (.param + .bin) by hand, for tests of the reader and the ports.

The layout follows ncnn's documented formats (see irestore.models.ncnn): a kernel with storage
tag 0 (raw fp32) or the fp16 tag, then a raw fp32 bias; PReLU slopes raw fp32.
"""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np

FP16_TAG = 0x01306B47


def kernel_blob(weights: np.ndarray, fp16: bool) -> bytes:
    flat = np.ascontiguousarray(weights, dtype=np.float32).ravel()
    if not fp16:
        return struct.pack("<I", 0) + flat.astype("<f4").tobytes()
    data = flat.astype("<f2").tobytes()
    return struct.pack("<I", FP16_TAG) + data + b"\0" * (-len(data) % 4)


def write_srvgg(folder: Path, rng: np.random.Generator, feat: int = 8, convs: int = 1, fp16: bool = True,
                stem: str = "tiny") -> tuple[Path, dict]:
    """A tiny SRVGGNetCompact (x4) with random weights; returns the .param path and the weights."""
    lines, blob = [], b""
    chans = [3] + [feat] * (convs + 1) + [48]
    weights = {}
    lines.append("Input            in0   0 1 data")
    lines.append("Split            sp0   1 2 data d0 d1")
    prev = "d1"
    for i, (a, b) in enumerate(zip(chans, chans[1:])):
        w = rng.normal(0, 0.2, (b, a, 3, 3)).astype(np.float32)
        bias = rng.normal(0, 0.1, b).astype(np.float32)
        if fp16:
            w = w.astype(np.float16).astype(np.float32)
        weights[f"conv{i}"] = (w, bias)
        lines.append(f"Convolution      conv{i} 1 1 {prev} c{i} 0={b} 1=3 4=1 5=1 6={w.size}")
        blob += kernel_blob(w, fp16) + bias.astype("<f4").tobytes()
        prev = f"c{i}"
        if i < len(chans) - 2:
            slope = rng.uniform(0.0, 0.3, b).astype(np.float32)
            weights[f"prelu{i}"] = slope
            lines.append(f"PReLU            prelu{i} 1 1 {prev} p{i} 0={b}")
            blob += slope.astype("<f4").tobytes()
            prev = f"p{i}"
    lines.append(f"PixelShuffle     ps    1 1 {prev} shuf 0=4")
    lines.append("Interp           up    1 1 d0 near 0=1 1=4.000000e+00 2=4.000000e+00")
    lines.append("BinaryOp         add   2 1 shuf near output")
    blobs = len({t for line in lines for t in line.split()[4:] if "=" not in t})
    text = f"7767517\n{len(lines)} {blobs}\n" + "\n".join(lines) + "\n"
    folder.mkdir(parents=True, exist_ok=True)
    param = folder / f"{stem}.param"
    param.write_text(text)
    (folder / f"{stem}.bin").write_bytes(blob)
    return param, weights
