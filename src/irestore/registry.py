"""Named network configurations: `create_network(name)` / `list_networks()`, and the network
families a restorer checkpoint can hold (`build_network(config)`, `NETWORK_TYPES`)."""

from __future__ import annotations

from dataclasses import replace

from torch import nn

from irestore.models.erunet import ERUNet, ERUNetConfig
from irestore.models.m3unet import M3UNet, M3UNetConfig

NetworkConfig = ERUNetConfig | M3UNetConfig
# checkpoint "network.type" -> (config class, network class)
NETWORK_TYPES: dict[str, tuple[type, type[nn.Module]]] = {"erunet": (ERUNetConfig, ERUNet), "m3unet": (M3UNetConfig, M3UNet)}

NETWORK_CONFIGS: dict[str, NetworkConfig] = {
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
    # M3UNET's multi-scale dilated U-Net at the paper's scale (for a GPU)
    "m3unet-paper": M3UNetConfig(
        width=64, depth=4, encoder_blocks=(2, 2, 2, 2), decoder_blocks=(2, 2, 2, 2), middle_blocks=2,
        text_levels=(1, 2, 3), refine_blocks=2,
    ),
    # the specialists' size for CPU training (bf16 dense convolutions)
    "m3unet-small": M3UNetConfig(width=16, depth=3, encoder_blocks=(1, 1, 1), decoder_blocks=(1, 1, 1), middle_blocks=1,
                                 text_levels=(2,), max_channels=128),
    "m3unet-tiny": M3UNetConfig(
        width=8, depth=2, encoder_blocks=(1, 1), decoder_blocks=(1, 1), dilations=(2, 3), text_levels=(1,),
        attention_heads=2, text_dim=32, degradation_dim=8,
    ),
}
NETWORK_ALIASES = {"m3unet": "m3unet-small"}


def list_networks() -> list[str]:
    return sorted(NETWORK_CONFIGS)


def network_config(name: str, **overrides) -> NetworkConfig:
    name = NETWORK_ALIASES.get(name, name)
    if name not in NETWORK_CONFIGS:
        raise KeyError(f"unknown network {name!r}; registered: {', '.join(list_networks())}")
    return replace(NETWORK_CONFIGS[name], **overrides)


def network_type(config: NetworkConfig) -> str:
    """The checkpoint type name of a network config."""
    return next(name for name, (config_class, _) in NETWORK_TYPES.items() if isinstance(config, config_class))


def network_family(name: str) -> type[nn.Module] | None:
    """The network class a registered name builds (None for an unknown name)."""
    try:
        return NETWORK_TYPES[network_type(network_config(name))][1]
    except KeyError:
        return None


def build_network(config: NetworkConfig) -> nn.Module:
    return NETWORK_TYPES[network_type(config)][1](config)


def create_network(name: str, **overrides) -> nn.Module:
    """Build a registered network, e.g. create_network('erunet-small', text_dim=384)."""
    return build_network(network_config(name, **overrides))
