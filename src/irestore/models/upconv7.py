"""UpConv7 (waifu2x's ``upconv_7``): six valid 3x3 convolutions and a 4x4 stride-2 deconvolution.

The network sees only valid pixels, so an input padded by 7 px on every side comes out exactly
2x the unpadded size: ``forward`` pads by replication (as waifu2x does) and returns ``2H x 2W``.
Weights load from waifu2x's ncnn files (:func:`upconv7_from_ncnn`).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from irestore.models.ncnn import NcnnGraph, expect, leaky_slope, load_conv

__all__ = ["PADDING", "UpConv7", "upconv7_from_ncnn"]

PADDING = 7  # 6 valid 3x3 convs (6 px) and the deconvolution's crop (1 px) on each side
_CHANNELS = (3, 16, 32, 64, 128, 128, 256)
_SLOPE = 0.1


class UpConv7(nn.Module):
    """``forward(x)``: x in [0, 1], B x 3 x H x W -> B x 3 x 2H x 2W (not clamped)."""

    scale = 2

    def __init__(self) -> None:
        super().__init__()
        self.convs = nn.ModuleList(nn.Conv2d(a, b, 3) for a, b in zip(_CHANNELS, _CHANNELS[1:]))
        self.deconv = nn.ConvTranspose2d(_CHANNELS[-1], 3, 4, stride=2, padding=3)

    def forward(self, x: torch.Tensor, pad: bool = True) -> torch.Tensor:
        """With ``pad=False`` the caller supplies the 7 px context (a tile with its neighbours' pixels)."""
        if pad:
            x = F.pad(x, (PADDING,) * 4, mode="replicate")
        for conv in self.convs:
            x = F.leaky_relu(conv(x), _SLOPE)
        return self.deconv(x)


def upconv7_from_ncnn(graph: NcnnGraph) -> UpConv7:
    """An UpConv7 with the weights of a waifu2x ``upconv_7`` ncnn model; refuses any other graph."""
    convs, deconvs = graph.of_type("Convolution"), graph.of_type("Deconvolution")
    expect(len(convs) == 6 and len(deconvs) == 1, graph, "not an upconv_7 model (expected 6 convolutions and 1 deconvolution)")
    expect(all(int(c.get(4, 0)) == 0 and int(c.get(1)) == 3 for c in convs), graph, "upconv_7 convolutions are valid 3x3")
    expect(all(abs(leaky_slope(c) - _SLOPE) < 1e-6 for c in convs), graph, "upconv_7 uses leaky ReLU 0.1")
    deconv = deconvs[0]
    expect((int(deconv.get(1)), int(deconv.get(3, 1)), int(deconv.get(4, 0))) == (4, 2, 3), graph,
           "upconv_7's deconvolution is 4x4, stride 2, padding 3")
    net = UpConv7()
    for module, layer in zip(net.convs, convs):
        load_conv(module, layer)
    load_conv(net.deconv, deconv, transposed=True)
    return net.eval()
