"""Reader for ncnn's model files: the ``.param`` graph and the ``.bin`` weights.

No ncnn at run time: the files are parsed here and their weights loaded into PyTorch ports
(:mod:`irestore.models.upconv7`, :mod:`irestore.models.rrdbnet`, :mod:`irestore.models.srvgg`).

``.param`` (text): the magic ``7767517``, then ``layer_count blob_count``, then one line per layer:
``type name bottom_count top_count bottom... top... key=value...``. A key is an integer id; a
value is an int, a float (it contains ``.`` or an exponent), or, for keys written ``-233XX``,
an array of id ``XX``: ``count,v1,v2,...``.

``.bin``: the weights of the layers that have any, in layer order, without names. Each layer
reads its blobs in a fixed order with ncnn's ``ModelBin::load(size, type)``: type 1 is raw
float32; type 0 starts with a 4-byte storage tag (fp16, int8, fp32, or a quantisation table).
Only the layer types below have weights; any other type with weights is refused with its name.
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

__all__ = ["NcnnError", "NcnnGraph", "NcnnLayer", "conv_weights", "expect", "leaky_slope", "load_conv", "load_prelu", "read_ncnn", "read_param", "read_weights"]

MAGIC = 7767517
_ARRAY_KEY = -23300
_TAG_FP16 = 0x01306B47
_TAG_INT8 = 0x000D4B38
_TAG_FP32 = 0x0002C056
_WEIGHTLESS = {
    "Input", "Split", "Concat", "Eltwise", "BinaryOp", "Interp", "PixelShuffle", "ReLU", "Sigmoid",
    "Noop", "Crop", "Padding", "Reshape", "Permute", "Flatten", "Pooling", "Clip", "TanH", "Dropout",
}


class NcnnError(ValueError):
    """An ncnn file that cannot be read; the message names the file and what is wrong."""


@dataclass
class NcnnLayer:
    type: str
    name: str
    bottoms: list[str]
    tops: list[str]
    params: dict[int, int | float | list[int | float]]
    weights: list[np.ndarray] = field(default_factory=list)  # filled by read_weights, in ncnn's order

    def get(self, key: int, default=None):
        return self.params.get(key, default)


@dataclass
class NcnnGraph:
    path: Path
    layers: list[NcnnLayer]

    def of_type(self, *types: str) -> list[NcnnLayer]:
        return [layer for layer in self.layers if layer.type in types]

    def weighted(self) -> list[NcnnLayer]:
        return [layer for layer in self.layers if layer.weights]

    def count(self, kind: str) -> int:
        return len(self.of_type(kind))


def _value(text: str) -> int | float:
    lowered = text.lower()
    return float(text) if ("." in lowered or "e" in lowered) else int(text)


def _parse_params(path: Path, line_no: int, items: list[str]) -> dict:
    params: dict[int, int | float | list] = {}
    for item in items:
        key_text, sep, value = item.partition("=")
        if not sep:
            raise NcnnError(f"{path}:{line_no}: parameter {item!r} is not key=value")
        try:
            key = int(key_text)
            if key <= _ARRAY_KEY:
                count, *values = value.split(",")
                if len(values) != int(count):
                    raise NcnnError(f"{path}:{line_no}: array parameter {item!r} declares {count} values, has {len(values)}")
                params[_ARRAY_KEY - key] = [_value(v) for v in values]
            else:
                params[key] = _value(value)
        except ValueError as error:
            raise NcnnError(f"{path}:{line_no}: bad parameter {item!r} ({error})") from error
    return params


def read_param(path: str | os.PathLike) -> NcnnGraph:
    """Parse a ``.param`` file into its layers (weights not loaded)."""
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").split("\n")
    except (OSError, UnicodeDecodeError) as error:
        raise NcnnError(f"{path}: cannot read the ncnn param file ({error})") from error
    lines = [line for line in lines if line.strip()]
    if not lines or lines[0].strip() != str(MAGIC):
        raise NcnnError(f"{path}: not an ncnn param file (the first line is not the magic number {MAGIC})")
    try:
        layer_count, _blob_count = (int(v) for v in lines[1].split())
    except (IndexError, ValueError) as error:
        raise NcnnError(f"{path}: line 2 must be 'layer_count blob_count'") from error
    if len(lines) - 2 != layer_count:
        raise NcnnError(f"{path}: declares {layer_count} layers but has {len(lines) - 2} layer lines (truncated?)")
    layers = []
    for line_no, line in enumerate(lines[2:], start=3):
        parts = line.split()
        try:
            kind, name, n_in, n_out = parts[0], parts[1], int(parts[2]), int(parts[3])
        except (IndexError, ValueError) as error:
            raise NcnnError(f"{path}:{line_no}: a layer line starts with 'type name bottoms tops'") from error
        blobs = parts[4 : 4 + n_in + n_out]
        if len(blobs) != n_in + n_out:
            raise NcnnError(f"{path}:{line_no}: layer {name} names fewer blobs than it declares")
        layers.append(NcnnLayer(kind, name, blobs[:n_in], blobs[n_in:], _parse_params(path, line_no, parts[4 + n_in + n_out :])))
    return NcnnGraph(path, layers)


class _Reader:
    """ncnn's ModelBinFromDataReader over one file's bytes."""

    def __init__(self, path: Path, data: bytes) -> None:
        self.path, self.data, self.offset = path, data, 0

    def _take(self, size: int, what: str) -> bytes:
        end = self.offset + size
        if end > len(self.data):
            raise NcnnError(f"{self.path}: ends at byte {len(self.data)} while reading {what} (needs {end}); "
                            "the .bin does not belong to this .param, or is truncated")
        chunk = self.data[self.offset : end]
        self.offset = end
        return chunk

    def load(self, count: int, kind: int, what: str) -> np.ndarray:
        if kind == 1:
            return np.frombuffer(self._take(4 * count, what), dtype="<f4").copy()
        tag_bytes = self._take(4, what)
        (tag,) = struct.unpack("<I", tag_bytes)
        if tag == _TAG_FP16:
            raw = self._take(_align4(2 * count), what)
            return np.frombuffer(raw[: 2 * count], dtype="<f2").astype(np.float32)
        if tag == _TAG_INT8:
            raise NcnnError(f"{self.path}: {what} is int8-quantised; only float models are supported")
        if tag == _TAG_FP32 or tag == 0:
            return np.frombuffer(self._take(4 * count, what), dtype="<f4").copy()
        if sum(tag_bytes) != 0:  # a 256-entry table, then one byte index per weight
            table = np.frombuffer(self._take(4 * 256, what), dtype="<f4")
            indices = np.frombuffer(self._take(_align4(count), what)[:count], dtype=np.uint8)
            return table[indices].astype(np.float32)
        raise NcnnError(f"{self.path}: unknown storage tag {tag:#010x} for {what}")


def _align4(size: int) -> int:
    return (size + 3) // 4 * 4


def _layer_blobs(layer: NcnnLayer, path: Path) -> list[tuple[int, int, str]]:
    """(count, load type, label) of each weight blob the layer reads, in ncnn's order."""
    if layer.type in ("Convolution", "Deconvolution", "ConvolutionDepthWise", "DeconvolutionDepthWise", "InnerProduct"):
        if layer.get(8, 0) or layer.get(19, 0):  # int8 scales, dynamic weights
            raise NcnnError(f"{path}: layer {layer.name} uses int8 scales or dynamic weights; not supported")
        blobs = [(int(layer.get(6, 0)), 0, "weight")]
        if layer.get(5, 0):
            blobs.append((int(layer.get(0, 0)), 1, "bias"))
        return blobs
    if layer.type == "PReLU":
        return [(int(layer.get(0, 0)), 1, "slope")]
    if layer.type in _WEIGHTLESS:
        return []
    raise NcnnError(f"{path}: layer {layer.name} has type {layer.type}, which this reader does not know")


def read_weights(graph: NcnnGraph, bin_path: str | os.PathLike) -> NcnnGraph:
    """Fill each layer's ``weights`` from the ``.bin`` file; the whole file must be consumed."""
    bin_path = Path(bin_path)
    try:
        reader = _Reader(bin_path, bin_path.read_bytes())
    except OSError as error:
        raise NcnnError(f"{bin_path}: cannot read the ncnn weights ({error})") from error
    for layer in graph.layers:
        layer.weights = [reader.load(n, kind, f"{layer.name}.{label}") for n, kind, label in _layer_blobs(layer, graph.path)]
    if reader.offset != len(reader.data):
        raise NcnnError(f"{bin_path}: {len(reader.data) - reader.offset} bytes left after the last layer's weights; "
                        f"the .bin does not belong to {graph.path.name}")
    return graph


def read_ncnn(param_path: str | os.PathLike, bin_path: str | os.PathLike | None = None) -> NcnnGraph:
    """The graph of ``X.param`` with the weights of ``X.bin`` (beside it unless given)."""
    param_path = Path(param_path)
    return read_weights(read_param(param_path), bin_path or param_path.with_suffix(".bin"))


def conv_weights(layer: NcnnLayer, transposed: bool = False) -> tuple[np.ndarray, np.ndarray | None]:
    """A Convolution or Deconvolution layer's kernel in PyTorch's layout, and its bias (or None).

    ncnn keeps both as ``out x in x kh x kw``; PyTorch's ConvTranspose2d wants ``in x out x kh x kw``.
    """
    out_ch = int(layer.get(0))
    kw = int(layer.get(1, 1))
    kh = int(layer.get(11, kw))
    weight = layer.weights[0]
    in_ch, rest = divmod(weight.size, out_ch * kh * kw)
    if rest or in_ch == 0:
        raise NcnnError(f"layer {layer.name}: {weight.size} weights do not form {out_ch} x ? x {kh} x {kw}")
    kernel = weight.reshape(out_ch, in_ch, kh, kw)
    bias = layer.weights[1] if len(layer.weights) > 1 else None
    return (kernel.transpose(1, 0, 2, 3).copy() if transposed else kernel), bias


def leaky_slope(layer: NcnnLayer) -> float:
    """The negative slope of a layer's fused activation (0 = ReLU); NcnnError for other activations."""
    kind = int(layer.get(9, 0))
    if kind == 0:
        raise NcnnError(f"layer {layer.name}: no fused activation where one was expected")
    if kind == 1:
        return float((layer.get(10) or [0.0])[0])
    if kind == 2:
        return float(layer.get(10)[0])
    raise NcnnError(f"layer {layer.name}: fused activation type {kind} is not ReLU or leaky ReLU")


def load_conv(module, layer: NcnnLayer, transposed: bool = False) -> None:
    """Copy a layer's kernel and bias into a torch Conv2d/ConvTranspose2d, checking the shapes."""
    kernel, bias = conv_weights(layer, transposed)
    _copy(module.weight, kernel, layer.name)
    if (bias is None) != (module.bias is None):
        raise NcnnError(f"layer {layer.name}: bias {'missing' if bias is None else 'unexpected'}")
    if bias is not None:
        _copy(module.bias, bias, layer.name)


def load_prelu(module, layer: NcnnLayer) -> None:
    _copy(module.weight, layer.weights[0], layer.name)


def _copy(parameter, array: np.ndarray, name: str) -> None:
    import torch

    if tuple(parameter.shape) != array.shape:
        raise NcnnError(f"layer {name}: weights of shape {array.shape}, the network expects {tuple(parameter.shape)}")
    with torch.no_grad():
        parameter.copy_(torch.from_numpy(np.ascontiguousarray(array)))


def expect(condition: bool, graph: NcnnGraph, what: str) -> None:
    """Refuse a graph that is not the network a port implements."""
    if not condition:
        raise NcnnError(f"{graph.path}: {what}")
