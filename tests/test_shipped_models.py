"""The models shipped inside the package, loaded by name through the public API, on a real
held-out photo (tests/data/aitzgorri_crop.png, never seen in training)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from irestore import degrade
from irestore.conditioning.classifier import DEFAULT_CLASSIFIER
from irestore.evaluate.metrics import psnr
from irestore.io import image_to_tensor, read_image, tensor_to_rgb
from irestore.labels import LABELS
from irestore.pipeline import ALLINONE_MODEL, DEFAULT_MODEL, DEHAZE_MODEL, DERAIN_MODEL, LOWLIGHT_MODEL, Restorer, load_model
from irestore.registry import create_classifier, network_type, weights_source
from irestore.weights import locate
from paths import TEST_DATA

PHOTO = TEST_DATA / "aitzgorri_crop.png"
# one degradation of each kind the restorer is trained for, at a fixed, clearly visible level
CASES = {
    "noise": ("noise", {"sigma": 25}),
    "motion": ("motion", {"severity": "moderate"}),
    "defocus": ("defocus", {"severity": "moderate"}),
    "rain": ("rain", {"severity": "moderate"}),
    "haze": ("haze", {"severity": "moderate"}),
    "lowlight": ("lowlight", {"severity": "moderate"}),
    "jpeg": ("jpeg", {"quality": 10}),
    "mix": ("mix", {"kinds": ("rain", "noise"), "severity": "light"}),
}


@pytest.fixture(scope="module")
def clean() -> np.ndarray:
    return read_image(PHOTO).rgb


@pytest.fixture(scope="module")
def restorer() -> Restorer:
    return Restorer.from_pretrained(ALLINONE_MODEL, device="cpu")


def test_the_shipped_models_come_from_the_package_and_are_small():
    total = 0
    for name in (ALLINONE_MODEL, DERAIN_MODEL, LOWLIGHT_MODEL, DEHAZE_MODEL, DEFAULT_CLASSIFIER):
        path, place = locate(weights_source(name))
        assert place == "package", (name, place)
        total += sum(f.stat().st_size for f in path.parent.iterdir())
        assert (path.parent / "README.md").is_file(), f"{name} has no model card"
    assert total < 50e6
    assert DEFAULT_MODEL == ALLINONE_MODEL


def test_the_restorer_is_wired_to_the_shipped_classifier(restorer):
    assert restorer.info.classifier == DEFAULT_CLASSIFIER and restorer.classifier is not None
    assert restorer.info.prediction == "x0" and restorer.info.text_encoder == "minilm"


# Kinds the CPU-trained allinone-small does not restore yet (README "Results", issue #7): strict
# xfail, so a retrained model that does restore them makes these tests fail until listed here.
NOT_YET = {"motion": "deblurring", "defocus": "deblurring", "rain": "deraining (+0.5 dB; the derain specialist does it)",
           "jpeg": "JPEG artefact removal (+0.25 dB)", "mix": "light rain + noise"}
# the shipped specialists, each with the kind it is for, the gain it must reach on the held-out photo
# (issue #14's target for rain: input + 4 dB; dehaze measured +5.0 dB), the PSNR a clean photo must
# keep (measured: derain above 38 dB; lowlight 36.8 dB, it slightly re-tones a well-exposed photo;
# dehaze 48.9 dB) and whether the default pool has it (all three: lowlight joined once dehaze was
# the pool's haze member, README *Results*)
SPECIALISTS = {DERAIN_MODEL: ("rain", 4.0, 38.0, True), LOWLIGHT_MODEL: ("lowlight", 5.0, 35.0, True),
               DEHAZE_MODEL: ("haze", 4.0, 45.0, True)}


def _restore(restorer, clean, case) -> tuple[float, float]:
    kind, kwargs = CASES[case]
    degraded = degrade.DEGRADATIONS[kind](clean, np.random.default_rng(7), **kwargs)
    restored = tensor_to_rgb(restorer.restore(image_to_tensor(degraded.image), prompt=degraded.description,
                                              generator=torch.Generator().manual_seed(0)))
    return psnr(degraded.image, clean), psnr(restored, clean)


@pytest.mark.parametrize("case", [
    pytest.param(case, marks=pytest.mark.xfail(strict=True, reason=f"not yet learned: {NOT_YET[case]}"))
    if case in NOT_YET else case for case in sorted(CASES)
])
def test_the_shipped_restorer_improves_psnr_on_a_held_out_photo(restorer, clean, case):
    before, after = _restore(restorer, clean, case)
    assert after > before + 0.5, f"{case}: {before:.2f} dB -> {after:.2f} dB"


@pytest.mark.parametrize("case", sorted(CASES))
def test_the_shipped_restorer_does_no_harm_where_it_cannot_help(restorer, clean, case):
    before, after = _restore(restorer, clean, case)
    assert after > before - 0.5, f"{case}: {before:.2f} dB -> {after:.2f} dB"


@pytest.mark.parametrize("name", sorted(SPECIALISTS))
def test_each_shipped_specialist_restores_its_kind_on_a_held_out_photo(clean, name):
    case, gain, _, _ = SPECIALISTS[name]
    specialist = Restorer.from_pretrained(name, device="cpu")
    assert specialist.info.prediction == "direct" and network_type(specialist.info.network) == "m3unet"
    before, after = _restore(specialist, clean, case)
    assert after > before + gain, f"{name} on {case}: {before:.2f} dB -> {after:.2f} dB"


@pytest.mark.parametrize("name", sorted(SPECIALISTS))
def test_each_shipped_specialist_leaves_a_clean_photo_nearly_unchanged(clean, name):
    specialist = Restorer.from_pretrained(name, device="cpu")
    kept = tensor_to_rgb(specialist.restore(image_to_tensor(clean), prompt="a clean photo"))
    assert psnr(kept, clean) > SPECIALISTS[name][2], psnr(kept, clean)


def _exposure_matched(image: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """``image`` with the one gain per channel that fits it best to ``reference`` (least squares)."""
    gain = (image * reference).sum(axis=(0, 1)) / (image * image).sum(axis=(0, 1))
    return np.clip(image * gain, 0, 1)


def test_the_lowlight_specialist_brightens_without_the_noise_of_gamma_and_the_all_in_one_model(clean, restorer):
    """How bright a dark photo should be is ambiguous (README, *The low-light specialist*); what the
    specialist adds is the rest: with the exposure matched to the truth, it is clearly above both."""
    from irestore.restorers import Condition, create_restorer

    degraded = degrade.DEGRADATIONS["lowlight"](clean, np.random.default_rng(7), severity="moderate")
    pixels = image_to_tensor(degraded.image)
    outputs = {
        "lowlight": Restorer.from_pretrained(LOWLIGHT_MODEL, device="cpu").restore(pixels, prompt=degraded.description),
        "gamma": create_restorer("gamma").restore(pixels, Condition(labels=("lowlight",))),
        "allinone": restorer.restore(pixels, prompt=degraded.description, generator=torch.Generator().manual_seed(0)),
    }
    scores = {k: psnr(_exposure_matched(tensor_to_rgb(v), clean), clean) for k, v in outputs.items()}
    assert scores["lowlight"] > max(scores["gamma"], scores["allinone"]) + 3, scores


def test_the_default_pool_prefers_each_of_its_specialists_for_its_kind():
    from irestore.plan.pool import DEFAULT_POOL, preferences

    for name, (case, _, _, in_pool) in SPECIALISTS.items():
        if in_pool:
            assert preferences()[CASES[case][0]][0] == name
        else:
            assert name not in DEFAULT_POOL, f"{name} joined the pool: measure the plan with it and update SPECIALISTS"


def test_the_default_model_restores_blind_without_a_prompt(clean):
    noisy = degrade.noise(clean, np.random.default_rng(3), sigma=25).image
    restored = tensor_to_rgb(load_model().restore(image_to_tensor(noisy), generator=torch.Generator().manual_seed(0)))
    assert psnr(restored, clean) > psnr(noisy, clean) + 3


def test_the_shipped_classifier_decides_with_calibrated_levels_from_its_checkpoint():
    classifier = create_classifier("degnet", DEFAULT_CLASSIFIER, "cpu")
    config = classifier.info
    assert config.head is not None and set(config.thresholds) == set(config.absent_levels) == set(LABELS[1:])
    assert classifier.clean_level == config.clean_level is not None
    assert classifier.thresholds == config.thresholds and config.calibration["ece_after"] < config.calibration["ece_before"]


@pytest.mark.parametrize("kind,label", [("noise", "noise"), ("rain", "rain"), ("haze", "haze"),
                                         ("lowlight", "lowlight"), ("jpeg", "jpeg"), ("motion", "motion_blur"),
                                         ("defocus", "defocus_blur"), ("lowres", "lowres")])
def test_the_shipped_classifier_names_a_heavy_degradation(clean, kind, label):
    classifier = create_classifier("degnet", DEFAULT_CLASSIFIER, "cpu")
    degraded = degrade.DEGRADATIONS[kind](clean, np.random.default_rng(11), severity="heavy").image
    result = classifier.classify(image_to_tensor(degraded))
    assert result.top_label == label, result.probabilities


# --------------------------------------------------------------------------- the default plan over the shipped pool


@pytest.fixture(scope="module")
def adaptive():
    from irestore.plan import AdaptiveRestorer

    return AdaptiveRestorer.create("auto")


def _planned(adaptive, clean, case) -> tuple[float, float, str]:
    kind, kwargs = CASES[case]
    degraded = degrade.DEGRADATIONS[kind](clean, np.random.default_rng(7), **kwargs).image
    result = adaptive.restore_planned(image_to_tensor(degraded))
    return psnr(degraded, clean), psnr(tensor_to_rgb(result.image), clean), result.applied


@pytest.mark.parametrize("case", sorted(CASES))
def test_the_default_plan_never_makes_a_held_out_photo_worse(adaptive, clean, case):
    before, after, applied = _planned(adaptive, clean, case)
    assert after >= before - 0.05, f"{case}: {before:.2f} dB -> {after:.2f} dB with {applied!r}"


@pytest.mark.parametrize("case,gain", [("noise", 8.0), ("lowlight", 3.0), ("haze", 1.0), ("rain", 4.0)])
def test_the_default_plan_restores_what_its_members_can(adaptive, clean, case, gain):
    before, after, applied = _planned(adaptive, clean, case)
    assert after > before + gain, f"{case}: {before:.2f} dB -> {after:.2f} dB with {applied!r}"


def test_the_default_plan_leaves_a_clean_photo_exactly_as_it_was(adaptive, clean):
    result = adaptive.restore_planned(image_to_tensor(clean))
    assert result.applied == "" and np.array_equal(tensor_to_rgb(result.image), clean)
