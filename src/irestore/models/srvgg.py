"""SRVGGNetCompact (Real-ESRGAN's compact net, ``realesr-animevideov3``): a plain VGG-style stack.

A 3x3 convolution and PReLU, ``num_conv`` more of each, a convolution to ``3 * 4^2`` channels and a
pixel shuffle, plus the nearest-upsampled input (the net learns a residual). The x4 net is the
only one the package ships (its x2 and x3 files hold the same weights); x2 and x3 resize its
output with bicubic interpolation, as those files' graphs do.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from irestore.models.ncnn import NcnnGraph, expect, load_conv, load_prelu

__all__ = ["SRVGGNetCompact", "srvgg_from_ncnn"]

_NET_SCALE = 4


class SRVGGNetCompact(nn.Module):
    """``forward(x)``: B x 3 x H x W in [0, 1] -> B x 3 x (sH) x (sW), s = ``scale`` (not clamped)."""

    def __init__(self, num_feat: int = 64, num_conv: int = 16, scale: int = 4) -> None:
        super().__init__()
        if scale not in (2, 3, 4):
            raise ValueError(f"SRVGGNetCompact scales by 2, 3 or 4, not {scale}")
        self.scale = scale
        self.convs = nn.ModuleList([nn.Conv2d(3, num_feat, 3, padding=1)])
        self.convs.extend(nn.Conv2d(num_feat, num_feat, 3, padding=1) for _ in range(num_conv))
        self.convs.append(nn.Conv2d(num_feat, 3 * _NET_SCALE**2, 3, padding=1))
        self.prelus = nn.ModuleList(nn.PReLU(num_feat) for _ in range(num_conv + 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feat = x
        for conv, prelu in zip(self.convs, self.prelus):
            feat = prelu(conv(feat))
        out = F.pixel_shuffle(self.convs[-1](feat), _NET_SCALE) + F.interpolate(x, scale_factor=_NET_SCALE, mode="nearest")
        if self.scale == _NET_SCALE:
            return out
        size = (x.shape[-2] * self.scale, x.shape[-1] * self.scale)
        return F.interpolate(out, size=size, mode="bicubic", align_corners=False)


def srvgg_from_ncnn(graph: NcnnGraph, scale: int | None = None) -> SRVGGNetCompact:
    """A SRVGGNetCompact with a ``realesr-animevideov3`` ncnn model's weights. ``scale`` defaults to
    the graph's own (its final resize); any of 2, 3, 4 may be asked of the x4 weights."""
    convs, prelus = graph.of_type("Convolution"), graph.of_type("PReLU")
    expect(len(convs) >= 3 and len(prelus) == len(convs) - 1, graph, "not an SRVGGNetCompact (each conv but the last has a PReLU)")
    shuffles = graph.of_type("PixelShuffle")
    expect(len(shuffles) == 1 and int(shuffles[0].get(0)) == _NET_SCALE, graph, "SRVGGNetCompact ends in a 4x pixel shuffle")
    expect(int(convs[-1].get(0)) == 3 * _NET_SCALE**2, graph, "the last convolution must give 48 channels")
    net = SRVGGNetCompact(int(convs[0].get(0)), len(convs) - 2, scale or _graph_scale(graph))
    for module, layer in zip(net.convs, convs):
        expect(int(layer.get(9, 0)) == 0, graph, f"layer {layer.name}: unexpected fused activation")
        load_conv(module, layer)
    for module, layer in zip(net.prelus, prelus):
        load_prelu(module, layer)
    return net.eval()


def _graph_scale(graph: NcnnGraph) -> int:
    resizes = [i for i in graph.of_type("Interp") if float(i.get(1, 1.0)) < 1.0]
    if not resizes:
        return _NET_SCALE
    expect(int(resizes[0].get(0)) == 3, graph, "the output resize of SRVGGNetCompact is bicubic")
    return round(_NET_SCALE * float(resizes[0].get(1)))
