"""RRDBNet (ESRGAN, Wang et al. 2018), the x4 generator of Real-ESRGAN x4plus.

A first convolution, a trunk of residual-in-residual dense blocks (each three 5-conv dense
blocks, residuals scaled by 0.2), a trunk convolution with a long skip, then two rounds of
nearest 2x upsampling + conv + leaky ReLU 0.2, and two output convolutions. The x4 model takes
the image as is (no pixel-unshuffle; the x2 variant, not supported here, would start with one).
Weights load from Real-ESRGAN's ncnn files (:func:`rrdbnet_from_ncnn`), where the block count
and widths are read from the graph.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from irestore.models.ncnn import NcnnGraph, expect, leaky_slope, load_conv

__all__ = ["RRDBNet", "RRDBNetConfig", "rrdbnet_from_ncnn"]

_SLOPE = 0.2
_RESIDUAL = 0.2
_CONVS_PER_BLOCK = 15  # 3 dense blocks of 5 convolutions
_OUTER_CONVS = 6  # first, trunk, two upsampling, high-resolution, last


@dataclass(frozen=True)
class RRDBNetConfig:
    num_feat: int = 64
    num_block: int = 23
    num_grow: int = 32


class _DenseBlock(nn.Module):
    def __init__(self, feat: int, grow: int) -> None:
        super().__init__()
        self.convs = nn.ModuleList(nn.Conv2d(feat + i * grow, grow if i < 4 else feat, 3, padding=1) for i in range(5))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = [x]
        for conv in self.convs[:-1]:
            features.append(F.leaky_relu(conv(torch.cat(features, 1)), _SLOPE))
        return self.convs[-1](torch.cat(features, 1)) * _RESIDUAL + x


class _RRDB(nn.Module):
    def __init__(self, feat: int, grow: int) -> None:
        super().__init__()
        self.blocks = nn.Sequential(*(_DenseBlock(feat, grow) for _ in range(3)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.blocks(x) * _RESIDUAL + x


class RRDBNet(nn.Module):
    """``forward(x)``: B x 3 x H x W in [0, 1] -> B x 3 x 4H x 4W (not clamped)."""

    scale = 4

    def __init__(self, config: RRDBNetConfig | None = None) -> None:
        super().__init__()
        self.config = c = config or RRDBNetConfig()
        self.conv_first = nn.Conv2d(3, c.num_feat, 3, padding=1)
        self.body = nn.Sequential(*(_RRDB(c.num_feat, c.num_grow) for _ in range(c.num_block)))
        self.conv_body = nn.Conv2d(c.num_feat, c.num_feat, 3, padding=1)
        self.conv_up1 = nn.Conv2d(c.num_feat, c.num_feat, 3, padding=1)
        self.conv_up2 = nn.Conv2d(c.num_feat, c.num_feat, 3, padding=1)
        self.conv_hr = nn.Conv2d(c.num_feat, c.num_feat, 3, padding=1)
        self.conv_last = nn.Conv2d(c.num_feat, 3, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feat = self.conv_first(x)
        feat = feat + self.conv_body(self.body(feat))
        feat = F.leaky_relu(self.conv_up1(F.interpolate(feat, scale_factor=2, mode="nearest")), _SLOPE)
        feat = F.leaky_relu(self.conv_up2(F.interpolate(feat, scale_factor=2, mode="nearest")), _SLOPE)
        return self.conv_last(F.leaky_relu(self.conv_hr(feat), _SLOPE))

    def convolutions(self) -> list[nn.Conv2d]:
        """Every convolution in the order the ncnn graph lists them."""
        inner = [conv for rrdb in self.body for block in rrdb.blocks for conv in block.convs]
        return [self.conv_first, *inner, self.conv_body, self.conv_up1, self.conv_up2, self.conv_hr, self.conv_last]


def rrdbnet_from_ncnn(graph: NcnnGraph) -> RRDBNet:
    """An RRDBNet with the weights of a Real-ESRGAN x4 ncnn model (block count read from the graph)."""
    convs = graph.of_type("Convolution")
    blocks, rest = divmod(len(convs) - _OUTER_CONVS, _CONVS_PER_BLOCK)
    expect(rest == 0 and blocks > 0, graph, f"{len(convs)} convolutions do not form an RRDBNet")
    expect(graph.count("PixelShuffle") == 0, graph, "starts with a pixel-unshuffle (an x2/x1 RRDBNet); only x4 is supported")
    interps = graph.of_type("Interp")
    expect(len(interps) == 2 and all(int(i.get(0)) == 1 and float(i.get(1)) == 2.0 for i in interps), graph,
           "an x4 RRDBNet upsamples twice by 2, nearest")
    expect(all(int(c.get(1)) == 3 and int(c.get(4, 0)) == 1 for c in convs), graph, "RRDBNet convolutions are 3x3, padding 1")
    feat, grow = int(convs[0].get(0)), int(convs[1].get(0))
    net = RRDBNet(RRDBNetConfig(feat, blocks, grow))
    modules = net.convolutions()
    activated = {i for i, m in enumerate(modules) if _has_activation(net, i)}
    for index, (module, layer) in enumerate(zip(modules, convs)):
        if index in activated:
            expect(abs(leaky_slope(layer) - _SLOPE) < 1e-6, graph, f"layer {layer.name} should end in leaky ReLU 0.2")
        else:
            expect(int(layer.get(9, 0)) == 0, graph, f"layer {layer.name} should have no activation")
        load_conv(module, layer)
    return net.eval()


def _has_activation(net: RRDBNet, index: int) -> bool:
    """Whether the index-th convolution (ncnn order) is followed by leaky ReLU in the network."""
    inner = _CONVS_PER_BLOCK * net.config.num_block
    if 1 <= index <= inner:
        return (index - 1) % 5 != 4  # the 5th conv of each dense block feeds the residual
    return index in (inner + 2, inner + 3, inner + 4)  # the two upsampling convs and conv_hr
