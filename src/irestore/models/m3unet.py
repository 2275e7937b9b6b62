"""M3UNet: the multi-scale, text-fused U-Net of M3UNET, built from dense dilated convolutions.

Input: the SDE state x_t concatenated with the degraded image μ (6 channels) when
``uses_state`` (an IR-SDE network, usually x̂_0 prediction with few steps), else μ alone (a
direct regressor). Every output is a residual on μ at its scale: the full-resolution one comes
through the refine layer, and each coarser decoder level has its own (``scales=True``) so the
multi-scale L1 loss supervises every level against the downsampled target.

- Blocks: a 3×3 convolution, then parallel 3×3 convolutions at each dilation of
  ``dilations`` (the paper compares D = 3, 4, 5 and [3, 4, 5]) summed, modulated (FiLM) by the
  fused time/text/degradation embedding, and a 3×3 projection; residual.
- Text: image features attend to the text tokens (cross-attention) at ``text_levels`` and in
  the bottleneck.
- Dense 3×3 convolutions without normalisation layers: the layer type oneDNN runs fastest on a
  CPU, in bf16 on CPUs that have it (see ``M3UNet.CPU_BF16``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from irestore.models.conditioning import Conditioning
from irestore.models.layers import TextCrossAttention, TextImageFusion, pad_to_multiple
from irestore.models.unet_config import UNetConfigMixin


@dataclass(frozen=True)
class M3UNetConfig(UNetConfigMixin):
    """Constructor arguments of M3UNet; saved verbatim as the model's config."""

    width: int = 32
    depth: int = 3  # encoder levels, each followed by a 2x downsample
    encoder_blocks: tuple[int, ...] = (1, 1, 1)
    decoder_blocks: tuple[int, ...] = (1, 1, 1)
    middle_blocks: int = 1
    dilations: tuple[int, ...] = (3, 4, 5)
    text_levels: tuple[int, ...] = (1, 2)  # decoder levels (0 = full resolution) with text cross-attention
    attention_heads: int = 4
    refine_blocks: int = 1
    uses_state: bool = True
    text_dim: int = 384
    degradation_dim: int = 64
    image_channels: int = 3
    max_channels: int = 256
    level_channels: tuple[int, ...] = field(init=False, default=())

    def __post_init__(self) -> None:
        self._set_level_channels()
        if not self.dilations or min(self.dilations) < 1:
            raise ValueError(f"dilations must be one or more positive integers, got {self.dilations}")
        if any(not 0 <= level < self.depth for level in self.text_levels):
            raise ValueError(f"text_levels must lie in 0..{self.depth - 1}, got {self.text_levels}")


class DilatedBlock(nn.Module):
    """conv 3×3 -> sum of dilated 3×3 convs -> FiLM by the embedding -> conv 3×3, residual."""

    def __init__(self, channels: int, emb_dim: int, dilations: tuple[int, ...]):
        super().__init__()
        self.conv_in = nn.Conv2d(channels, channels, 3, padding=1)
        self.dilated = nn.ModuleList(nn.Conv2d(channels, channels, 3, padding=d, dilation=d) for d in dilations)
        self.modulation = nn.Linear(emb_dim, 2 * channels)
        self.conv_out = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x: Tensor, emb: Tensor) -> Tensor:
        h = F.leaky_relu(self.conv_in(x), 0.2)
        h = sum(conv(h) for conv in self.dilated)
        scale, shift = self.modulation(emb)[:, :, None, None].chunk(2, dim=1)
        h = F.leaky_relu(torch.addcmul(shift, h, 1 + scale), 0.2)
        return x + self.conv_out(h)


class _Level(nn.Module):
    def __init__(self, channels: int, blocks: int, emb_dim: int, config: M3UNetConfig, text: bool):
        super().__init__()
        self.blocks = nn.ModuleList(DilatedBlock(channels, emb_dim, config.dilations) for _ in range(blocks))
        self.text = TextCrossAttention(channels, config.text_dim, config.attention_heads) if text else None

    def forward(self, x: Tensor, emb: Tensor, cond: Conditioning) -> Tensor:
        for block in self.blocks:
            x = block(x, emb)
        return self.text(x, cond.text_tokens, cond.text_mask) if self.text is not None else x


class M3UNet(nn.Module):
    CPU_BF16 = True  # trains and infers faster under bf16 autocast on CPUs with native bf16 (devices.PRECISIONS)
    DEFAULT_PREDICTION = "x0"  # with its multi-scale L1
    MULTI_SCALE = True  # forward(..., scales=True) gives one output per decoder scale

    def __init__(self, config: M3UNetConfig = M3UNetConfig()):
        super().__init__()
        self.config = config
        chans = config.level_channels
        emb_dim = chans[0] * 4
        inputs = (2 if config.uses_state else 1) * config.image_channels
        self.fusion = TextImageFusion(emb_dim, chans[0], config.text_dim, config.degradation_dim)
        self.intro = nn.Conv2d(inputs, chans[0], 3, padding=1)
        self.encoders = nn.ModuleList(
            _Level(chans[i], config.encoder_blocks[i], emb_dim, config, text=False) for i in range(config.depth)
        )
        self.downs = nn.ModuleList(nn.Conv2d(chans[i], chans[i + 1], 2, stride=2) for i in range(config.depth))
        self.middle = _Level(chans[-1], config.middle_blocks, emb_dim, config, text=True)
        self.ups = nn.ModuleList(
            nn.Sequential(nn.Conv2d(chans[i + 1], chans[i] * 4, 1), nn.PixelShuffle(2)) for i in range(config.depth)
        )
        self.decoders = nn.ModuleList(
            _Level(chans[i], config.decoder_blocks[i], emb_dim, config, text=i in config.text_levels)
            for i in range(config.depth)
        )
        # one residual image per coarse decoder level, for the multi-scale loss
        self.scale_heads = nn.ModuleList(nn.Conv2d(chans[i], config.image_channels, 3, padding=1) for i in range(1, config.depth))
        self.refine = nn.ModuleList(DilatedBlock(chans[0], emb_dim, (1, 2)) for _ in range(config.refine_blocks))
        self.outro = nn.Conv2d(chans[0], config.image_channels, 3, padding=1)

    def forward(self, x: Tensor, mu: Tensor, t: Tensor, cond: Conditioning, scales: bool = False) -> Tensor | list[Tensor]:
        """The full-resolution output (residual on μ, or the noise); with ``scales``, the list
        [full, 1/2, 1/4, ...] of outputs, each the size of μ average-pooled by 2^level."""
        height, width = mu.shape[-2:]
        inputs = torch.cat([x, mu], dim=1) if self.config.uses_state else mu
        h = self.intro(pad_to_multiple(inputs, self.config.multiple))
        emb = self.fusion(t.expand(mu.shape[0]), cond.text_pooled, cond.degradation, cond.degradation_present)
        skips = []
        for encoder, down in zip(self.encoders, self.downs):
            h = encoder(h, emb, cond)
            skips.append(h)
            h = down(h)
        h = self.middle(h, emb, cond)
        coarse = []
        for i in reversed(range(self.config.depth)):
            h = self.decoders[i](self.ups[i](h) + skips[i], emb, cond)
            if scales and i > 0:
                size = (-(-height // 2**i), -(-width // 2**i))
                coarse.append(self.scale_heads[i - 1](h)[..., : size[0], : size[1]])
        for block in self.refine:
            h = block(h, emb)
        out = self.outro(h)[..., :height, :width]
        return [out, *reversed(coarse)] if scales else out

    def zero_output(self) -> None:
        """Start as the identity x̂_0 = μ at every scale."""
        for head in (self.outro, *self.scale_heads):
            nn.init.zeros_(head.weight)
            nn.init.zeros_(head.bias)

    def activation_elements_per_pixel(self) -> float:
        """Rough count of live activation values per input pixel during inference."""
        chans, cfg = self.config.level_channels, self.config
        return sum((c * (3 + len(cfg.dilations))) / 4**i for i, c in enumerate(chans))

