"""The named networks: restorer network configs (ERUNet, M3UNet), the network types a restorer
checkpoint can hold, and the DegNet classifier configs, declared in :mod:`irestore.registry`."""

from __future__ import annotations

from irestore.models.degnet import DegNetConfig
from irestore.models.erunet import ERUNet, ERUNetConfig
from irestore.models.m3unet import M3UNet, M3UNetConfig
from irestore.registry import NETWORKS, register_classifier_network, register_network, register_network_family

NetworkConfig = ERUNetConfig | M3UNetConfig

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
CLASSIFIER_CONFIGS: dict[str, DegNetConfig] = {
    "degnet": DegNetConfig(),
    "degnet-small": DegNetConfig(channels=(16, 32, 64, 96), blocks=(1, 1, 1, 1), embed_dim=32),
    "degnet-tiny": DegNetConfig(channels=(8, 16, 24, 32), blocks=(1, 1, 1, 1), embed_dim=16),
}

register_network_family("erunet", ERUNetConfig, ERUNet)
register_network_family("m3unet", M3UNetConfig, M3UNet)
for _name, _config in NETWORK_CONFIGS.items():
    register_network(_name, _config)
NETWORKS.alias("m3unet", "m3unet-small")
for _name, _config in CLASSIFIER_CONFIGS.items():
    register_classifier_network(_name, _config)
