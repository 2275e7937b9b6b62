"""The restoration-method contract, met by every entry of the one registry (benchmark peers, pool members, plans)."""

import json
import subprocess
import sys

import numpy as np
import pytest
import torch

from irestore import degrade
from irestore.io import image_to_tensor
from irestore.labels import LABELS
from irestore.restorers import Card, Condition, Degradation, create_restorer, list_restorers, method_info
from irestore.restorers.base import MethodSkipped

# one input per label a method may declare (small, so every method runs in well under a second)
_INPUTS = {
    "noise": lambda c, r: degrade.noise(c, r, sigma=25),
    "motion_blur": lambda c, r: degrade.motion(c, r, size=7),
    "defocus_blur": lambda c, r: degrade.defocus(c, r, radius=2),
    "rain": lambda c, r: degrade.rain(c, r, amount=0.5),
    "haze": lambda c, r: degrade.haze(c, r, beta=0.12),
    "lowlight": lambda c, r: degrade.lowlight(c, r, brightness=0.1),
    "jpeg": lambda c, r: degrade.jpeg(c, r, quality=10),
    "lowres": lambda c, r: degrade.lowres(c, r, scale=2),
}


def _photo(size=(40, 32)) -> np.ndarray:
    from skimage import data

    img = data.astronaut()[::8, ::8][: size[0], : size[1]]
    return (img / 255.0).astype(np.float32)


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory):
    from irestore.diffusion.checkpoint import CheckpointInfo, save_checkpoint
    from irestore.diffusion.sde import SDEConfig
    from irestore.registry import create_network
    from network_helpers import _randomise

    net = _randomise(create_network("erunet-tiny", text_dim=384), seed=3)
    info = CheckpointInfo(network=net.config, sde=SDEConfig(), text_encoder="minilm", text_dim=384, name="tiny", default_steps=1)
    return save_checkpoint(tmp_path_factory.mktemp("ck") / "tiny", net, info)


def _spec(info, tiny_checkpoint) -> list[str]:
    """Concrete specs for a registry entry (prefix forms get real instances)."""
    if not info.prefix:
        return [info.name]
    if info.name == "irestore:":
        return [f"irestore:{tiny_checkpoint}@1"]
    return ["plan:fixed", "plan:oracle"]


@pytest.mark.parametrize("info", list_restorers(), ids=lambda i: i.name)
def test_every_registered_method_meets_the_contract(info, tiny_checkpoint):
    assert info.card.summary and info.card.licence and info.card.weights
    assert set(info.card.fixes) <= set(LABELS) - {"clean"}
    if not info.prefix:
        assert info.card.s_per_mp is not None, f"{info.name} declares no measured cost"
    for spec in _spec(info, tiny_checkpoint):
        method = create_restorer(spec)
        assert method.card.name == spec or info.prefix is False
        clean = _photo()
        labels = tuple(method.card.fixes) or ("noise",)
        for label in labels if not method.card.any_input else labels[:2]:
            made = _INPUTS[label](clean, np.random.default_rng(0))
            family = degrade.family_of(made.params["type"])
            condition = Condition.from_degradation(Degradation(family, made.params, made.description, clean.shape[:2]),
                                                   reference=clean if method.card.oracle else None)
            batch = image_to_tensor(made.image).repeat(2, 1, 1, 1)
            try:
                out = method.restore(batch, condition)
            except MethodSkipped as skipped:  # allowed (the planner drops the step), but it must say why
                assert len(str(skipped)) > 20, f"{spec} skipped {label} without a reason"
                continue
            assert isinstance(out, torch.Tensor) and out.dtype == torch.float32 and out.device.type == "cpu"
            assert out.shape[:2] == (2, 3) and 0 <= out.min() and out.max() <= 1
            if not method.card.changes_size:
                assert out.shape == batch.shape
            else:
                assert out.shape[-2:] == clean.shape[:2]  # restored to the target size
            assert torch.allclose(out[0], out[1], atol=1e-4), f"{spec}: the same image in a batch must give the same result"


def test_cards_say_what_they_fix_and_at_which_severity():
    ffdnet = method_info("ffdnet-color").card
    assert ffdnet.covers("noise") and ffdnet.covers("noise", 50.0) and not ffdnet.covers("noise", 90.0)
    assert not ffdnet.covers("haze") and ffdnet.handles_family("noise") and not ffdnet.handles_family("mix")
    assert method_info("identity").card.handles_family("mix") and method_info("allinone-small").card.handles_family(None)
    assert not method_info("wiener").card.blind and method_info("bicubic").card.changes_size
    assert method_info("ffdnet") is method_info("ffdnet-color")  # the benchmark's earlier name
    with pytest.raises(ValueError, match="unknown labels"):
        Card("x", "bad", fixes={"sharpness": (0, 1)})
    with pytest.raises(KeyError, match="unknown method"):
        method_info("no-such-method")


def test_the_condition_of_a_synthetic_mixture_holds_its_true_labels_and_severities():
    made = degrade.degrade(_photo(), "mix:haze+noise:moderate", np.random.default_rng(3))
    condition = Condition.from_degradation(Degradation("mix", made.params, made.description))
    assert condition.labels == ("haze", "noise")
    assert condition.severities["noise"] == made.params["steps"][1]["sigma"]
    assert condition.prompt == made.description and condition.reference is None


def test_the_default_model_is_listed_without_importing_the_pipeline_first():
    code = "from irestore.weights.store import list_models; print([m.name for m in list_models()])"
    names = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert "allinone-small" in names and "degnet-default" in names


def test_models_list_json_names_the_default_restorer(tmp_path):
    out = subprocess.run([sys.executable, "-m", "irestore", "models", "list", "--json"], capture_output=True, text=True, check=True)
    rows = json.loads(out.stdout)
    assert any(row["name"] == "allinone-small" and row["present"] for row in rows)
