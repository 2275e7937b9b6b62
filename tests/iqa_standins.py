"""Random stand-ins for the LPIPS and FID backbone weights, written under the exact file names
torchvision and pyiqa look for, so their real loading code runs offline."""

from __future__ import annotations

import warnings
from pathlib import Path

import torch
import torchvision

from irestore.evaluate.metrics import ALEXNET_FILE, INCEPTION_FILE, LPIPS_HEADS_FILE

LPIPS_CHANNELS = (64, 192, 384, 256, 256)  # AlexNet feature widths the LPIPS heads weigh


def fid_inception_standin() -> torch.nn.Module:
    """pytorch-fid's InceptionV3 layout (torchvision Inception3 with the FID blocks), random weights."""
    from pyiqa.archs import inception as fid

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # pyiqa passes torchvision's deprecated `pretrained=`
        net = fid._inception_v3(num_classes=1008, aux_logits=False, pretrained=False)
    net.Mixed_5b = fid.FIDInceptionA(192, pool_features=32)
    net.Mixed_5c = fid.FIDInceptionA(256, pool_features=64)
    net.Mixed_5d = fid.FIDInceptionA(288, pool_features=64)
    net.Mixed_6b = fid.FIDInceptionC(768, channels_7x7=128)
    net.Mixed_6c = fid.FIDInceptionC(768, channels_7x7=160)
    net.Mixed_6d = fid.FIDInceptionC(768, channels_7x7=160)
    net.Mixed_6e = fid.FIDInceptionC(768, channels_7x7=192)
    net.Mixed_7b = fid.FIDInceptionE_1(1280)
    net.Mixed_7c = fid.FIDInceptionE_2(2048)
    return net


def write_standins(torch_home: Path, heads_scale: float = 1.0, seed: int = 0) -> Path:
    """Write random AlexNet, LPIPS heads (|N(0,1)| * heads_scale) and FID Inception weights; returns the hub dir."""
    hub = torch_home / "hub"
    (hub / "checkpoints").mkdir(parents=True, exist_ok=True)
    (hub / "pyiqa").mkdir(parents=True, exist_ok=True)
    generator = torch.Generator().manual_seed(seed)
    with torch.random.fork_rng():  # seeded layer init without touching the global generator of later tests
        torch.manual_seed(seed)
        torch.save(torchvision.models.alexnet().state_dict(), hub / "checkpoints" / ALEXNET_FILE)
        torch.save(fid_inception_standin().state_dict(), hub / "pyiqa" / INCEPTION_FILE)
    heads = {f"lin{i}.model.1.weight": torch.randn(1, c, 1, 1, generator=generator).abs() * heads_scale
             for i, c in enumerate(LPIPS_CHANNELS)}
    torch.save(heads, hub / "pyiqa" / LPIPS_HEADS_FILE)
    return hub
