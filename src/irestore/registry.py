"""Named network configurations: `create_network(name)` / `list_networks()`."""

from __future__ import annotations

from dataclasses import replace

from torch import nn

from irestore.models.erunet import ERUNet, ERUNetConfig

NETWORK_CONFIGS: dict[str, ERUNetConfig] = {
    # ETDiffIR's ERUNet: width 64, depth 4, ERBs [2,2,2,2] / [1,1,1,1], 2 at the bottom
    "erunet-paper": ERUNetConfig(
        width=64, depth=4, encoder_blocks=(2, 2, 2, 2), decoder_blocks=(1, 1, 1, 1), middle_blocks=2
    ),
    # CPU-friendly: a few seconds per megapixel per step on two cores
    "erunet-small": ERUNetConfig(
        width=16, depth=3, encoder_blocks=(1, 1, 2), decoder_blocks=(1, 1, 1), middle_blocks=2, expansion=2
    ),
    # for tests and smoke runs
    "erunet-tiny": ERUNetConfig(
        width=8,
        depth=2,
        encoder_blocks=(1, 1),
        decoder_blocks=(1, 1),
        middle_blocks=1,
        expansion=2,
        attention_heads=2,
        attention_head_dim=8,
        text_dim=32,
        degradation_dim=8,
    ),
}


def list_networks() -> list[str]:
    return sorted(NETWORK_CONFIGS)


def network_config(name: str, **overrides) -> ERUNetConfig:
    if name not in NETWORK_CONFIGS:
        raise KeyError(f"unknown network {name!r}; registered: {', '.join(list_networks())}")
    return replace(NETWORK_CONFIGS[name], **overrides)


def create_network(name: str, **overrides) -> nn.Module:
    """Build a registered network, e.g. create_network('erunet-small', text_dim=384)."""
    return ERUNet(network_config(name, **overrides))
