"""ERUNet: the text-conditioned noise predictor of ETDiffIR.

Input: the current SDE state x_t concatenated with the degraded image μ (6 channels).
Output: the predicted noise ε̂ (3 channels). A U-Net of Efficient Restoration Blocks,
each modulated by the fused time/text/degradation embedding; linear attention after every
encoder stage; cross-attention from the bottleneck to the text tokens.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

from irestore.models.conditioning import Conditioning
from irestore.models.layers import (
    EfficientRestorationBlock,
    LinearAttention,
    TextCrossAttention,
    TextImageFusion,
    pad_to_multiple,
)
from irestore.models.unet_config import UNetConfigMixin


@dataclass(frozen=True)
class ERUNetConfig(UNetConfigMixin):
    """Constructor arguments of ERUNet; saved verbatim as the model's config."""

    width: int = 64
    depth: int = 4  # encoder stages, each followed by a 2x downsample; the bottleneck is below them
    encoder_blocks: tuple[int, ...] = (2, 2, 2, 2)
    decoder_blocks: tuple[int, ...] = (1, 1, 1, 1)
    middle_blocks: int = 2
    kernel_size: int = 7
    expansion: int = 4
    attention_heads: int = 4
    attention_head_dim: int = 16
    text_dim: int = 384
    degradation_dim: int = 64
    image_channels: int = 3
    max_channels: int = 512
    level_channels: tuple[int, ...] = field(init=False, default=())

    def __post_init__(self) -> None:
        self._set_level_channels()


class _Stage(nn.Module):
    """A run of ERBs at one resolution, optionally followed by linear attention."""

    def __init__(self, channels: int, blocks: int, config: ERUNetConfig, emb_dim: int, attention: bool):
        super().__init__()
        self.blocks = nn.ModuleList(
            EfficientRestorationBlock(channels, emb_dim, config.kernel_size, config.expansion) for _ in range(blocks)
        )
        self.attention = (
            LinearAttention(channels, config.attention_heads, config.attention_head_dim) if attention else None
        )

    def forward(self, x: Tensor, emb: Tensor) -> Tensor:
        for block in self.blocks:
            x = block(x, emb)
        return self.attention(x) if self.attention is not None else x


class ERUNet(nn.Module):
    CPU_BF16 = False  # its depthwise convs and element-wise layers train slower in bf16 on a CPU
    DEFAULT_PREDICTION = "noise"  # IR-SDE's maximum-likelihood loss
    MULTI_SCALE = False

    def __init__(self, config: ERUNetConfig = ERUNetConfig()):
        super().__init__()
        self.config = config
        chans = config.level_channels
        emb_dim = chans[0] * 4
        self.fusion = TextImageFusion(emb_dim, chans[0], config.text_dim, config.degradation_dim)
        self.intro = nn.Conv2d(2 * config.image_channels, chans[0], 3, padding=1)
        self.encoders = nn.ModuleList(
            _Stage(chans[i], config.encoder_blocks[i], config, emb_dim, attention=True) for i in range(config.depth)
        )
        self.downs = nn.ModuleList(nn.Conv2d(chans[i], chans[i + 1], 2, stride=2) for i in range(config.depth))
        self.middle = _Stage(chans[-1], config.middle_blocks, config, emb_dim, attention=False)
        self.cross_attention = TextCrossAttention(chans[-1], config.text_dim, config.attention_heads)
        self.ups = nn.ModuleList(
            nn.Sequential(nn.Conv2d(chans[i + 1], chans[i] * 4, 1), nn.PixelShuffle(2)) for i in range(config.depth)
        )
        self.decoders = nn.ModuleList(
            _Stage(chans[i], config.decoder_blocks[i], config, emb_dim, attention=False) for i in range(config.depth)
        )
        self.outro = nn.Conv2d(chans[0], config.image_channels, 3, padding=1)

    def forward(self, x: Tensor, mu: Tensor, t: Tensor, cond: Conditioning) -> Tensor:
        """Predict the noise in x_t. Any H×W: padded to the network multiple and cropped back."""
        height, width = x.shape[-2:]
        h = self.intro(pad_to_multiple(torch.cat([x, mu], dim=1), self.config.multiple))
        emb = self.fusion(t.expand(x.shape[0]), cond.text_pooled, cond.degradation, cond.degradation_present)
        skips = []
        for encoder, down in zip(self.encoders, self.downs):
            h = encoder(h, emb)
            skips.append(h)
            h = down(h)
        h = self.middle(h, emb)
        h = self.cross_attention(h, cond.text_tokens, cond.text_mask)
        for i in reversed(range(len(self.decoders))):
            h = self.decoders[i](self.ups[i](h) + skips[i], emb)
        return self.outro(h)[..., :height, :width]

    def zero_output(self) -> None:
        """Start as the identity x̂_0 = μ (for x̂_0 prediction)."""
        nn.init.zeros_(self.outro.weight)
        nn.init.zeros_(self.outro.bias)

    def activation_elements_per_pixel(self) -> float:
        """Rough count of live activation values per input pixel during inference."""
        cfg = self.config
        return sum((c * (cfg.expansion + 4) + 3 * cfg.attention_heads * cfg.attention_head_dim) / 4**i
                   for i, c in enumerate(cfg.level_channels))

