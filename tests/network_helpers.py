"""Conditionings and randomised weights for network tests."""

import torch

from irestore.models.conditioning import Conditioning


def make_cond(cfg, tokens=5, seed=0):
    g = torch.Generator().manual_seed(seed)
    deg = torch.randn(1, cfg.degradation_dim, generator=g) if cfg.degradation_dim else None
    return Conditioning(
        torch.randn(1, tokens, cfg.text_dim, generator=g),
        torch.ones(1, tokens, dtype=torch.bool),
        torch.randn(1, cfg.text_dim, generator=g),
        deg,
    )


def _randomise(net, seed=0):
    """Give zero-initialised parameters (GRN, biases) random values so every path is exercised."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in net.parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=g))
    return net.eval()
