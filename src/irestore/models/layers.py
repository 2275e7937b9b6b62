"""Building blocks of the ERUNet noise predictor (no I/O, no SDE knowledge)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class ChannelLayerNorm(nn.Module):
    """LayerNorm over the channel axis of a BCHW tensor (per pixel, so it is tile-local)."""

    def __init__(self, channels: int, eps: float = 1e-6):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))
        self.eps = eps

    def forward(self, x: Tensor) -> Tensor:
        x = x.permute(0, 2, 3, 1)
        x = F.layer_norm(x, x.shape[-1:], self.weight, self.bias, self.eps)
        return x.permute(0, 3, 1, 2)


class _SpatialNorm(torch.autograd.Function):
    """The L2 norm over H and W of a BCHW tensor, kept (B, C, 1, 1), in at least fp32. Autograd's
    generic norm backward takes five full-size passes; this one takes one multiply."""

    @staticmethod
    def forward(ctx, x: Tensor) -> Tensor:
        norms = torch.linalg.vector_norm(x, dim=(2, 3), keepdim=True, dtype=torch.promote_types(x.dtype, torch.float32))
        ctx.save_for_backward(x, norms)
        return norms

    @staticmethod
    def backward(ctx, grad: Tensor) -> Tensor:
        x, norms = ctx.saved_tensors
        return x * (grad / norms.clamp_min(torch.finfo(norms.dtype).tiny)).to(x.dtype)


class GRN(nn.Module):
    """Global Response Normalisation (ConvNeXt V2) for BCHW tensors."""

    def __init__(self, channels: int, eps: float = 1e-6):
        super().__init__()
        self.gamma = nn.Parameter(torch.zeros(1, channels, 1, 1))
        self.beta = nn.Parameter(torch.zeros(1, channels, 1, 1))
        self.eps = eps

    def forward(self, x: Tensor) -> Tensor:
        norms = _SpatialNorm.apply(x)
        scaled = norms / (norms.mean(dim=1, keepdim=True) + self.eps)
        # gamma * (x * scaled) + beta + x, with the per-channel factor formed first: one
        # full-size multiply-add instead of three full-size passes
        return torch.addcmul(self.beta.to(x.dtype), x, (1 + self.gamma * scaled).to(x.dtype))


class EfficientRestorationBlock(nn.Module):
    """ERB: large-kernel depthwise conv -> LayerNorm -> FiLM by the fused embedding ->
    inverted-bottleneck pointwise convs with GELU and GRN -> scaled residual."""

    def __init__(self, channels: int, emb_dim: int, kernel_size: int = 7, expansion: int = 4):
        super().__init__()
        hidden = channels * expansion
        self.dwconv = nn.Conv2d(channels, channels, kernel_size, padding=kernel_size // 2, groups=channels)
        self.norm = ChannelLayerNorm(channels)
        self.modulation = nn.Linear(emb_dim, 2 * channels)
        self.pw_expand = nn.Conv2d(channels, hidden, 1)
        self.grn = GRN(hidden)
        self.pw_project = nn.Conv2d(hidden, channels, 1)
        self.layer_scale = nn.Parameter(torch.full((1, channels, 1, 1), 1e-1))

    def forward(self, x: Tensor, emb: Tensor) -> Tensor:
        h = self.norm(self.dwconv(x))
        scale, shift = self.modulation(emb)[:, :, None, None].chunk(2, dim=1)
        h = torch.addcmul(shift, h, 1 + scale)
        h = self.pw_project(self.grn(F.gelu(self.pw_expand(h))))
        return torch.addcmul(x, self.layer_scale, h)


class LinearAttention(nn.Module):
    """Linear (efficient) self-attention over pixels: softmax over channels for queries and
    over positions for keys, so cost grows linearly with image size. Pre-norm, residual."""

    def __init__(self, channels: int, heads: int = 4, head_dim: int = 16):
        super().__init__()
        self.heads, self.head_dim = heads, head_dim
        inner = heads * head_dim
        self.norm = ChannelLayerNorm(channels)
        self.to_qkv = nn.Conv2d(channels, inner * 3, 1, bias=False)
        self.to_out = nn.Conv2d(inner, channels, 1)

    def forward(self, x: Tensor) -> Tensor:
        # Works on (B, pixels, channels) tokens, a free view of a channels_last tensor, and
        # keeps the heads side by side: the per-head contexts are the diagonal blocks of one
        # (inner x inner) matrix, so no full-size tensor is transposed or copied per head.
        b, c, h, w = x.shape
        tokens = self.norm(x).permute(0, 2, 3, 1).reshape(b, h * w, c)
        # three projections rather than one split: unbind's backward would concatenate the
        # full-size gradients again
        wq, wk, wv = self.to_qkv.weight.flatten(1).chunk(3)
        q = F.linear(tokens, wq).view(b, h * w, self.heads, self.head_dim).softmax(dim=-1).view(b, h * w, -1)
        k = F.linear(tokens, wk).softmax(dim=1)
        v = F.linear(tokens, wv)
        context = (k.transpose(1, 2) @ v) * self._head_mask(x)  # (B, inner, inner), block diagonal
        # the output projection folded into the small matrix: one full-size matmul, not two
        mixing = context @ self.to_out.weight.flatten(1).t().to(context.dtype)
        out = torch.baddbmm(self.to_out.bias.to(q.dtype).expand(b, 1, c), q, mixing.to(q.dtype))
        return x + out.view(b, h, w, c).permute(0, 3, 1, 2)

    def _head_mask(self, x: Tensor) -> Tensor:
        """Block-diagonal ones (one block per head), times the query scale."""
        block = torch.full((self.head_dim, self.head_dim), self.head_dim**-0.5, device=x.device)
        return torch.block_diag(*[block] * self.heads)


class TextCrossAttention(nn.Module):
    """Image features (queries) attend to text tokens (keys/values). Pre-norm, residual.
    Text is (B, L, D) with an optional (B, L) boolean mask of valid tokens."""

    def __init__(self, channels: int, text_dim: int, heads: int = 4):
        super().__init__()
        self.norm = ChannelLayerNorm(channels)
        self.text_proj = nn.Linear(text_dim, channels)
        self.attn = nn.MultiheadAttention(channels, heads, batch_first=True)

    def forward(self, x: Tensor, text: Tensor, mask: Tensor | None) -> Tensor:
        b, c, h, w = x.shape
        queries = self.norm(x).flatten(2).transpose(1, 2)
        keys = self.text_proj(text.to(queries.dtype))
        padding = None if mask is None else ~mask.bool()
        out, _ = self.attn(queries, keys, keys, key_padding_mask=padding, need_weights=False)
        return x + out.transpose(1, 2).reshape(b, c, h, w)


def timestep_embedding(t: Tensor, dim: int, max_period: float = 10000.0) -> Tensor:
    """Sinusoidal embedding of (possibly fractional) timesteps, shape (B, dim)."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, device=t.device, dtype=torch.float32) / half)
    args = t.float()[:, None] * freqs[None]
    return torch.cat([torch.cos(args), torch.sin(args)], dim=-1)


class TextImageFusion(nn.Module):
    """TIFB: time embedding + projected pooled text + projected degradation embedding,
    mixed by an MLP into the embedding that modulates every block.

    An image without a degradation embedding gets a learned "no embedding" vector in place of
    the projected one (trained for by dropping embeddings, as prompts are dropped), not the
    projection of zeros, which training never showed the network."""

    def __init__(self, emb_dim: int, time_dim: int, text_dim: int, degradation_dim: int):
        super().__init__()
        self.time_dim = time_dim
        self.time_mlp = nn.Sequential(nn.Linear(time_dim, emb_dim), nn.GELU(), nn.Linear(emb_dim, emb_dim))
        self.text_mlp = nn.Sequential(nn.Linear(text_dim, emb_dim), nn.GELU(), nn.Linear(emb_dim, emb_dim))
        self.degradation_mlp = None
        if degradation_dim > 0:
            self.degradation_mlp = nn.Sequential(nn.Linear(degradation_dim, emb_dim), nn.GELU(), nn.Linear(emb_dim, emb_dim))
            self.absent_degradation = nn.Parameter(torch.zeros(emb_dim))
        self.fuse = nn.Sequential(nn.GELU(), nn.Linear(emb_dim, emb_dim))

    def forward(self, t: Tensor, text_pooled: Tensor, degradation: Tensor | None, present: Tensor | None = None) -> Tensor:
        emb = self.time_mlp(timestep_embedding(t, self.time_dim))
        emb = emb + self.text_mlp(text_pooled.to(emb.dtype))
        if self.degradation_mlp is not None:
            emb = emb + self._degradation_term(degradation, present, emb.dtype)
        return self.fuse(emb)

    def _degradation_term(self, degradation: Tensor | None, present: Tensor | None, dtype: torch.dtype) -> Tensor:
        absent = self.absent_degradation.to(dtype)
        if degradation is None:
            if self.training:  # keep the projection in the graph (zero gradient): DDP needs every parameter used
                return absent + 0 * self.degradation_mlp(absent.new_zeros(1, self.degradation_mlp[0].in_features))[0]
            return absent
        projected = self.degradation_mlp(degradation.to(dtype))
        return projected if present is None else torch.where(present[:, None], projected, absent)

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        # a checkpoint from before the learned vector fed zeros for a missing embedding: its
        # "no embedding" vector is the projection of zeros, so such models restore as they did
        key, first, second = prefix + "absent_degradation", prefix + "degradation_mlp.0.", prefix + "degradation_mlp.2."
        if self.degradation_mlp is not None and key not in state_dict and first + "bias" in state_dict:
            hidden = F.gelu(state_dict[first + "bias"].float())
            state_dict[key] = (state_dict[second + "weight"].float() @ hidden + state_dict[second + "bias"].float())
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)


def pad_to_multiple(x: Tensor, multiple: int) -> Tensor:
    """Pad H and W at the bottom/right up to a multiple (the U-Nets crop their output back)."""
    pad_h, pad_w = -x.shape[-2] % multiple, -x.shape[-1] % multiple
    if not (pad_h or pad_w):
        return x
    # reflect needs the pad to be smaller than the size; replicate covers tiny inputs
    mode = "reflect" if pad_h < x.shape[-2] and pad_w < x.shape[-1] else "replicate"
    return F.pad(x, (0, pad_w, 0, pad_h), mode=mode)
