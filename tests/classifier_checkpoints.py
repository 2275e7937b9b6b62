"""Small DegNet checkpoints written through the production save path, for tests.

`random_checkpoint` has random weights everywhere. `scripted_checkpoint` zeroes the label and
severity heads' weights and sets their biases, so that every image gets the chosen
probabilities and severities: tests then know the expected labels, severities and captions
without running the code under test (the embedding still depends on the image).
"""

from __future__ import annotations

import math
from pathlib import Path

import torch

from irestore.conditioning.classifier import ClassifierInfo, save_classifier
from irestore.labels import LABELS
from irestore.models.degnet import DegNet, DegNetConfig

SMALL = DegNetConfig(channels=(8, 16, 16, 24), blocks=(1, 1, 1, 1), embed_dim=16)


def random_network(seed: int = 0, config: DegNetConfig = SMALL) -> DegNet:
    torch.manual_seed(seed)
    return DegNet(config).eval()


def random_checkpoint(folder: Path, seed: int = 0, config: DegNetConfig = SMALL) -> tuple[Path, DegNet]:
    network = random_network(seed, config)
    return save_classifier(folder, network, ClassifierInfo(network=config, name=f"random-{seed}")), network


def _logit(p: float) -> float:
    return math.log(p / (1 - p))


def scripted_checkpoint(folder: Path, probabilities: dict[str, float], severities: dict[str, float]) -> Path:
    """Every label absent (p = 0.01) except those given; severities 0.5 except those given."""
    network = random_network(1)
    with torch.no_grad():
        network.label_head.weight.zero_()
        network.severity_head.weight.zero_()
        for i, label in enumerate(LABELS):
            network.label_head.bias[i] = _logit(probabilities.get(label, 0.01))
            network.severity_head.bias[i] = _logit(severities.get(label, 0.5))
    return save_classifier(folder, network, ClassifierInfo(network=SMALL, name="scripted"))


# A registered classifier whose weights are nowhere (a shipped file deleted, say): what a user
# meets when a named model is missing, now that degnet-default itself ships in the package.
MISSING = "degnet-missing-test"


def register_missing_classifier() -> str:
    from irestore.registry import register_weights
    from irestore.weights import WeightSource

    register_weights(WeightSource(
        name=MISSING, filename="model.safetensors", package="irestore", package_file=f"assets/{MISSING}/model.safetensors",
        kind="classifier", description="registered by the tests; never present",
        install_hint="train one with `irestore train --task classifier` and pass --model PATH",
    ))
    return MISSING


def headed_checkpoint(folder: Path, probabilities: dict[str, float], thresholds: dict[str, float], seed: int = 2) -> Path:
    """A format-2 checkpoint: a random small DegNet plus an image-level head whose label layer
    is zeroed, so every image gets the given probabilities (absent labels 0.01), and the given
    per-label thresholds in its config."""
    from irestore.conditioning.classifier import head_input_dim
    from irestore.models.degnet import DegHead, DegHeadConfig

    network = random_network(seed)
    from irestore.conditioning.measures import NUM_MEASURES

    head = DegHead(DegHeadConfig(input_dim=head_input_dim(SMALL), hidden=(8,), measures=NUM_MEASURES))
    with torch.no_grad():
        head.label_head.weight.zero_()
        for i, label in enumerate(LABELS):
            head.label_head.bias[i] = _logit(probabilities.get(label, 0.01))
    network.head = head
    info = ClassifierInfo(network=SMALL, name="headed", head=head.config, thresholds=thresholds,
                          calibration={"method": "test"})
    return save_classifier(folder, network, info)
