"""The adaptive planner: prompt intents, member choice, rollback of harmful steps, forced and forbidden steps.

The planner is driven by a stand-in classifier whose probabilities are measurements of the image
(a blind noise estimate, the mean brightness), so each test knows what a correct decision is; the
members are the real registered methods plus deliberately harmful stand-ins. One test runs the
shipped classifier and pool on a held-out photo.
"""

import collections
import math

import cv2
import numpy as np
import pytest
import torch

from irestore import degrade
from irestore.conditioning.classifier import DEGRADATIONS, Classification
from irestore.evaluate.metrics import psnr
from irestore.io import image_to_tensor, read_image, tensor_to_rgb
from irestore.labels import LABELS
from irestore.plan import AdaptiveRestorer, Planner, PlannerSettings, PlanStep, explicit_plan, parse_intent
from irestore.plan.adaptive import USER_PROMPT_SOURCES
from irestore.plan.intent import Intent
from irestore.plan.pool import DEFAULT_POOL
from irestore.restorers import ArrayMethod, Card, MethodSkipped, create_restorer, method_info
from irestore.restorers.base import Condition, RunSettings
from irestore.restorers.ffdnet import estimate_noise_sigma
from paths import TEST_DATA

CROP = TEST_DATA / "aitzgorri_crop.png"


# --------------------------------------------------------------------------- intents


@pytest.mark.parametrize("text,force,forbid,only", [
    ("remove the rain", {"rain"}, set(), False),
    ("denoise only", {"noise"}, set(), True),
    ("keep the grain", set(), {"noise"}, False),
    ("remove the haze, but don't brighten it", {"haze"}, {"lowlight"}, False),
    ("fix the defocus blur", {"defocus_blur"}, set(), False),
    ("a portrait of my grandmother", set(), set(), False),
])
def test_a_user_prompt_forces_forbids_or_restricts_steps(text, force, forbid, only):
    intent = parse_intent(text, from_user=True)
    assert set(intent.force) == force and set(intent.forbid) == forbid and intent.only == only and not intent.add


def test_a_caption_only_adds_candidates():
    intent = parse_intent("a photo with heavy rain streaks and mild noise", from_user=False)
    assert set(intent.add) == {"rain", "noise"} and not intent.force and not intent.only
    assert parse_intent("a clean photo", from_user=False).empty
    assert "caption" not in USER_PROMPT_SOURCES and "--prompt" in USER_PROMPT_SOURCES


# --------------------------------------------------------------------------- stand-ins


def _sigmoid(x: float) -> float:
    return 1 / (1 + math.exp(-x))


class MeasuringClassifier:
    """Noise from the blind σ estimate, low light from the mean brightness; nothing else is ever seen."""

    name, backend, threshold, embedding_dim = "measuring", "measuring", 0.5, 8

    def classify(self, image: torch.Tensor) -> Classification:
        sigma = estimate_noise_sigma(image)
        probabilities = dict.fromkeys(LABELS, 0.0)
        probabilities["noise"] = _sigmoid((sigma - 6.0) / 1.5)
        probabilities["lowlight"] = _sigmoid((0.2 - float(image.mean())) / 0.02)
        probabilities["clean"] = math.prod(1 - probabilities[d] for d in DEGRADATIONS)
        severity = {d: 0.0 for d in DEGRADATIONS} | {"noise": min(sigma / 75, 1.0)}
        return Classification(probabilities, severity, torch.zeros(1, 8), backend="measuring")


class Harmful(ArrayMethod):
    """Claims to fix noise and low light; adds noise and darkens instead."""

    card = Card("harmful", "a stand-in that makes every image worse", fixes={"noise": (0, 75), "lowlight": (0.25, 0.02)}, s_per_mp=0.0)

    def restore_array(self, image, condition):
        rng = np.random.default_rng(0)
        return np.clip(image * 0.7 + rng.normal(0, 0.1, image.shape), 0, 1).astype(np.float32)


class HarmfulWhenLarge(ArrayMethod):
    """Brightens small images (the proxy views) well, but adds noise to large ones (the whole image)."""

    card = Card("harmful-when-large", "good on proxies, harmful on whole images", fixes={"lowlight": (0.25, 0.02)}, s_per_mp=0.0)

    def restore_array(self, image, condition):
        if max(image.shape[:2]) <= 192:
            return image ** 0.4
        return np.clip(image + np.random.default_rng(0).normal(0, 0.1, image.shape), 0, 1).astype(np.float32)


def _planner(pool: dict, preferences: dict, **settings) -> AdaptiveRestorer:
    planner = Planner(MeasuringClassifier(), pool, preferences, PlannerSettings(refine=None, **settings))
    return AdaptiveRestorer(planner, "auto")


def _clean() -> np.ndarray:
    return read_image(CROP).rgb


def _real(*names):
    return {name: (lambda n=name: create_restorer(n)) for name in names}


# --------------------------------------------------------------------------- choosing members


def test_the_planner_picks_the_member_that_helps_and_rolls_back_the_harmful_one():
    adaptive = _planner({**_real("ffdnet-color"), "harmful": Harmful()}, {"noise": ("harmful", "ffdnet-color")})
    clean = _clean()
    noisy = degrade.noise(clean, np.random.default_rng(0), sigma=25).image
    result = adaptive.restore_planned(image_to_tensor(noisy))
    assert result.plan.steps == [PlanStep("noise", "ffdnet-color")]
    outcomes = {e.step: e.outcome for e in result.plan.evaluations}
    assert outcomes == {"noise:harmful": "rolled back", "noise:ffdnet-color": "kept"}
    assert "noise:harmful" in result.plan.rolled_back
    assert psnr(tensor_to_rgb(result.image), clean) > psnr(noisy, clean) + 5


def test_dark_images_get_the_brightening_member_and_orders_combine_both():
    adaptive = _planner({**_real("ffdnet-color", "gamma"), "harmful": Harmful()},
                        {"noise": ("ffdnet-color", "harmful"), "lowlight": ("harmful", "gamma")})
    clean = _clean()
    dark = degrade.lowlight(clean, np.random.default_rng(0), brightness=0.08).image
    result = adaptive.restore_planned(image_to_tensor(dark))
    steps = [str(s) for s in result.plan.steps]
    assert steps[0] == "lowlight:gamma" and "harmful" not in " ".join(steps)
    assert set(steps) <= {"lowlight:gamma", "noise:ffdnet-color"}  # brightening may uncover noise, found afterwards
    assert psnr(tensor_to_rgb(result.image), clean) > psnr(dark, clean) + 3

    noisy_dark = degrade.noise(dark, np.random.default_rng(1), sigma=20).image
    both = adaptive.restore_planned(image_to_tensor(noisy_dark))
    assert sorted(str(s) for s in both.plan.steps) == ["lowlight:gamma", "noise:ffdnet-color"]


def test_a_clean_photo_goes_through_untouched():
    adaptive = _planner({**_real("ffdnet-color", "gamma")}, {"noise": ("ffdnet-color",), "lowlight": ("gamma",)})
    clean = image_to_tensor(_clean())
    result = adaptive.restore_planned(clean)
    assert result.plan.steps == [] and result.run == []
    assert torch.equal(result.image, clean)


class CalibratedMeasuringClassifier(MeasuringClassifier):
    """The same measurements with per-label thresholds, as a calibrated checkpoint carries them."""

    def classify(self, image: torch.Tensor) -> Classification:
        result = super().classify(image)
        thresholds = dict.fromkeys(DEGRADATIONS, 0.5) | {"noise": 0.25}
        return Classification(result.probabilities, result.severity, result.embedding, backend="measuring", thresholds=thresholds)


def test_the_planner_plans_at_each_label_s_own_threshold():
    clean = image_to_tensor(_clean())  # the stand-in sees noise at about 0.32 here
    pool, preferences = _real("ffdnet-color"), {"noise": ("ffdnet-color",)}
    plain = Planner(MeasuringClassifier(), pool, preferences, PlannerSettings(refine=None))
    calibrated = Planner(CalibratedMeasuringClassifier(), pool, preferences, PlannerSettings(refine=None))
    assert plain.plan(clean, plain.classifier.classify(clean)).candidates == []
    assert calibrated.plan(clean, calibrated.classifier.classify(clean)).candidates == ["noise"]


class DoubtingMeasuringClassifier(MeasuringClassifier):
    """The same measurements, with a calibrated clean level that this photo's clean probability misses."""

    def classify(self, image: torch.Tensor) -> Classification:
        result = super().classify(image)
        return Classification(result.probabilities, result.severity, result.embedding, backend="measuring",
                              clean_level=result.probabilities["clean"] + 0.01)


def test_the_planner_plans_for_an_uncertain_label_only_when_the_image_is_not_clean_either():
    clean = image_to_tensor(_clean())  # noise at about 0.32: uncertain (absent level 0.25, threshold 0.5)
    pool, preferences = _real("ffdnet-color"), {"noise": ("ffdnet-color",)}
    doubting = Planner(DoubtingMeasuringClassifier(), pool, preferences, PlannerSettings(refine=None))
    assert doubting.plan(clean, doubting.classifier.classify(clean)).candidates == ["noise"]
    plain = Planner(MeasuringClassifier(), pool, preferences, PlannerSettings(refine=None))
    assert plain.plan(clean, plain.classifier.classify(clean)).candidates == []


def test_a_step_that_only_harms_leaves_the_image_as_it_was():
    adaptive = _planner({"harmful": Harmful()}, {"noise": ("harmful",)})
    noisy = image_to_tensor(degrade.noise(_clean(), np.random.default_rng(0), sigma=25).image)
    result = adaptive.restore_planned(noisy)
    assert result.plan.steps == [] and torch.equal(result.image, noisy)


def test_the_whole_image_run_rolls_back_a_step_that_helped_only_on_the_proxy():
    adaptive = _planner({"harmful-when-large": HarmfulWhenLarge()}, {"lowlight": ("harmful-when-large",)})
    clean = np.tile(_clean(), (2, 2, 1))  # 384 px: larger than the proxy views
    dark = image_to_tensor(degrade.lowlight(clean, np.random.default_rng(0), brightness=0.08).image)
    result = adaptive.restore_planned(dark)
    assert [str(s) for s in result.plan.steps] == ["lowlight:harmful-when-large"]  # the proxy said it helps
    assert result.run[0]["kept"] is False and torch.equal(result.image, dark)
    assert "lowlight:harmful-when-large" in result.to_record()["plan_rolled_back"]


class FaintNoiseClassifier(MeasuringClassifier):
    """The same measurements, but noise is seen at a third of its strength: never detected (at most
    0.33, threshold 0.5), as the calibrated classifier misses haze under noise."""

    def classify(self, image: torch.Tensor) -> Classification:
        result = super().classify(image)
        probabilities = result.probabilities | {"noise": result.probabilities["noise"] / 3}
        severity = result.severity | {"noise": 60.0}  # σ 60: "heavy", had it been detected
        return Classification(probabilities, severity, result.embedding, backend="measuring")


def _dark_noisy() -> torch.Tensor:
    dark = degrade.lowlight(_clean(), np.random.default_rng(0), brightness=0.08).image
    return image_to_tensor(degrade.noise(dark, np.random.default_rng(1), sigma=15).image)


def _faint_planner(pool, preferences, **settings) -> AdaptiveRestorer:
    return AdaptiveRestorer(Planner(FaintNoiseClassifier(), pool, preferences, PlannerSettings(refine=None, **settings)), "auto")


def test_on_a_degraded_photo_a_probable_undetected_degradation_is_tried_and_kept_when_it_helps():
    pool, preferences = _real("ffdnet-color", "gamma"), {"noise": ("ffdnet-color",), "lowlight": ("gamma",)}
    image = _dark_noisy()
    assert 0.15 <= FaintNoiseClassifier().classify(image).probabilities["noise"] < 0.5  # probable, not detected
    exploring = _faint_planner(pool, preferences).restore_planned(image)
    assert exploring.plan.explored == ["noise"] and exploring.plan.candidates == ["noise", "lowlight"]
    assert {str(s) for s in exploring.plan.steps} == {"noise:ffdnet-color", "lowlight:gamma"}
    assert exploring.applied.count(":") == 2  # both kept on the whole image too
    cautious = _faint_planner(pool, preferences, explore=None).restore_planned(image)
    assert cautious.plan.explored == [] and [str(s) for s in cautious.plan.steps] == ["lowlight:gamma"]
    assert exploring.to_record()["plan_details"]["explored"] == ["noise"]


def test_a_guess_is_tried_with_the_preferred_member_only_and_rolled_back_when_it_harms():
    pool = {**_real("ffdnet-color", "gamma"), "harmful": Harmful()}
    result = _faint_planner(pool, {"noise": ("harmful", "ffdnet-color"), "lowlight": ("gamma",)}).restore_planned(_dark_noisy())
    tried = [e.step for e in result.plan.evaluations]
    assert "noise:harmful" in tried and "noise:ffdnet-color" not in tried
    assert [str(s) for s in result.plan.steps] == ["lowlight:gamma"]


class PromptRecorder(ArrayMethod):
    """A denoiser stand-in (3x3 median) that records the prompt of every call."""

    card = Card("recorder", "median filter", fixes={"noise": (0, 75)}, s_per_mp=0.0)

    def __init__(self):
        self.prompts = []

    def restore_array(self, image, condition):
        self.prompts.append(condition.prompt)
        return cv2.medianBlur(image, 3)


def test_a_guessed_step_is_told_its_degradation_is_mild_and_a_detected_one_its_estimated_severity():
    recorder = PromptRecorder()
    pool = {**_real("gamma"), "recorder": recorder}
    result = _faint_planner(pool, {"noise": ("recorder",), "lowlight": ("gamma",)}).restore_planned(_dark_noisy())
    assert result.plan.explored == ["noise"] and recorder.prompts
    assert set(recorder.prompts) == {"a photo with mild noise"}
    detected = result.classification  # the same severities, as if detected
    planner = _faint_planner(pool, {}).planner
    assert planner.condition(PlanStep("noise", "recorder"), detected, "").prompt == "a photo with heavy noise"
    assert planner.condition(PlanStep("noise", "recorder"), detected, "", guessed=True).prompt == "a photo with mild noise"


@pytest.mark.parametrize("settings,prompt", [({"explore_cost": 1.0}, None), ({}, "keep the grain"), ({}, "brighten only")])
def test_no_guess_with_a_costly_member_or_against_the_prompt(settings, prompt):
    pool, preferences = _real("ffdnet-color", "gamma"), {"noise": ("ffdnet-color",), "lowlight": ("gamma",)}
    adaptive = _faint_planner(pool, preferences, **settings)  # ffdnet-color's card: 6.1 s/MP
    plan, _, _ = adaptive.plan(_dark_noisy(), prompt or "", "--prompt" if prompt else "none")
    assert plan.explored == [] and "noise" not in plan.candidates


# --------------------------------------------------------------------------- prompts


def test_a_forced_step_runs_even_without_gain_and_a_forbidden_one_never():
    pool = {**_real("ffdnet-color"), "harmful": Harmful()}
    noisy = image_to_tensor(degrade.noise(_clean(), np.random.default_rng(0), sigma=25).image)
    forced = _planner({"harmful": Harmful()}, {"noise": ("harmful",)}).restore_planned(
        noisy, prompt="remove the noise", prompt_source="--prompt")
    assert [str(s) for s in forced.plan.steps] == ["noise:harmful"]
    assert [e.outcome for e in forced.plan.evaluations] == ["forced"] and forced.run[0]["kept"]
    kept_grain = _planner(pool, {"noise": ("ffdnet-color",)}).restore_planned(noisy, prompt="keep the grain", prompt_source="--prompt")
    assert kept_grain.plan.steps == [] and torch.equal(kept_grain.image, noisy)


def test_only_restricts_the_plan_to_what_the_prompt_names():
    adaptive = _planner(_real("ffdnet-color", "gamma"), {"noise": ("ffdnet-color",), "lowlight": ("gamma",)})
    dark = degrade.lowlight(_clean(), np.random.default_rng(0), brightness=0.08).image
    noisy_dark = image_to_tensor(degrade.noise(dark, np.random.default_rng(1), sigma=20).image)
    result = adaptive.restore_planned(noisy_dark, prompt="denoise only", prompt_source="--prompt")
    assert [str(s) for s in result.plan.steps] == ["noise:ffdnet-color"]


def test_a_caption_that_names_a_degradation_the_image_lacks_is_rolled_back():
    adaptive = _planner({"harmful": Harmful()}, {"noise": ("harmful",)})
    clean = image_to_tensor(_clean())
    result = adaptive.restore_planned(clean, prompt="a photo with heavy noise", prompt_source="caption")
    assert result.plan.candidates == ["noise"] and result.plan.steps == []


# --------------------------------------------------------------------------- fixed and explicit plans


def test_fixed_mode_follows_the_camera_reverse_order_without_evaluating():
    pool = _real("ffdnet-color", "gamma")
    planner = Planner(MeasuringClassifier(), pool, {"noise": ("ffdnet-color",), "lowlight": ("gamma",)}, PlannerSettings(refine=None))
    dark = degrade.lowlight(_clean(), np.random.default_rng(0), brightness=0.08).image
    noisy_dark = image_to_tensor(degrade.noise(dark, np.random.default_rng(1), sigma=20).image)
    result = AdaptiveRestorer(planner, "fixed").restore_planned(noisy_dark)
    assert [str(s) for s in result.plan.steps] == ["noise:ffdnet-color", "lowlight:gamma"]  # noise before exposure
    assert result.plan.evaluations == [] and all(entry["kept"] for entry in result.run)


class Declines(ArrayMethod):
    """Claims low light, then declines the whole image (as the blind deblurrer does when the photo's
    spectrum shows no lens disk): MethodSkipped, not an image."""

    card = Card("declines", "a stand-in that skips every image", fixes={"lowlight": (0.25, 0.02)}, s_per_mp=0.0)

    def restore_array(self, image, condition):
        raise MethodSkipped("no lens disk in the spectrum")


def test_a_step_whose_member_declines_the_whole_image_is_dropped_and_the_rest_of_the_plan_runs():
    planner = Planner(MeasuringClassifier(), {**_real("ffdnet-color"), "declines": Declines()},
                      {"noise": ("ffdnet-color",), "lowlight": ("declines",)}, PlannerSettings(refine=None))
    dark = degrade.lowlight(_clean(), np.random.default_rng(0), brightness=0.08).image
    noisy_dark = degrade.noise(dark, np.random.default_rng(1), sigma=20).image
    result = AdaptiveRestorer(planner, "fixed").restore_planned(image_to_tensor(noisy_dark))
    assert [str(s) for s in result.plan.steps] == ["noise:ffdnet-color", "lowlight:declines"]
    assert [(e["step"], e["kept"]) for e in result.run] == [("noise:ffdnet-color", True), ("lowlight:declines", False)]
    assert "no lens disk" in result.run[1]["skipped"]
    assert psnr(tensor_to_rgb(result.image), dark) > psnr(noisy_dark, dark) + 3  # the denoising step stayed


class BlurSeeingClassifier(MeasuringClassifier):
    """Sees motion and defocus blur alike in any image darker than mid-grey (a stand-in measure the
    members below change)."""

    def classify(self, image: torch.Tensor) -> Classification:
        blurred = _sigmoid((0.5 - float(image.mean())) / 0.02)
        probabilities = dict.fromkeys(LABELS, 0.0) | {"motion_blur": blurred, "defocus_blur": blurred}
        probabilities["clean"] = math.prod(1 - probabilities[d] for d in DEGRADATIONS)
        return Classification(probabilities, {d: 0.0 for d in DEGRADATIONS}, torch.zeros(1, 8), backend="measuring")


class Unblur(ArrayMethod):
    """Fixes both blur labels in one go (as the blind deblurrer does), whichever it is asked for."""

    card = Card("unblur", "a one-pass stand-in", fixes={"motion_blur": (0, 50), "defocus_blur": (0, 10)}, s_per_mp=0.0, one_pass=True)

    def restore_array(self, image, condition):
        return np.clip(image + 0.3, 0, 1).astype(np.float32)


class UnblurTwice(Unblur):
    card = Card("unblur-twice", "the same, not declared one-pass", fixes=Unblur.card.fixes, s_per_mp=0.0)


@pytest.mark.parametrize("member,one_pass", [(Unblur, True), (UnblurTwice, False)])
def test_a_one_pass_member_runs_once_for_all_its_labels(member, one_pass):
    name = member.card.name
    preferences = {"motion_blur": (name,), "defocus_blur": (name,)}
    planner = Planner(BlurSeeingClassifier(), {name: member()}, preferences, PlannerSettings(refine=None))
    assert len(planner.fixed_steps({"motion_blur", "defocus_blur"})) == (1 if one_pass else 2)
    dim = image_to_tensor((_clean() * 0.5).astype(np.float32))
    result = AdaptiveRestorer(planner, "auto").restore_planned(dim)
    assert len(result.plan.steps) == (1 if one_pass else 2)
    tried_after_it = [e for e in result.plan.evaluations if e.after]
    assert (tried_after_it == []) == one_pass


class Recording(Unblur):
    """Records what the planner hands it: estimate() sees the whole image, restore() each view."""

    card = Card("recording", "a stand-in that records its calls", fixes={"motion_blur": (0, 50)}, s_per_mp=0.0)

    def __init__(self):
        self.estimated, self.seen = [], []

    def estimate(self, image, condition):
        self.estimated.append(tuple(image.shape[-2:]))
        return {"width": image.shape[-1]}

    def restore_array(self, image, condition):
        self.seen.append((condition.estimate, condition.view_scale, image.shape[1]))
        return super().restore_array(image, condition)


def test_members_restore_the_proxy_views_with_what_they_read_from_the_whole_image():
    member = Recording()
    planner = Planner(BlurSeeingClassifier(), {"recording": member}, {"motion_blur": ("recording",)}, PlannerSettings(refine=None))
    image = image_to_tensor((np.tile(_clean(), (3, 3, 1)) * 0.5).astype(np.float32))
    width = image.shape[-1]
    assert width > 192  # so the proxy has a downscaled view and native crops
    planner.plan(image, planner.classifier.classify(image))
    assert member.estimated == [tuple(image.shape[-2:])]  # once, on the whole image
    estimates, scales, widths = zip(*member.seen[:3])
    assert all(e == {"width": width} for e in estimates)
    assert scales[0] == pytest.approx(widths[0] / width) and scales[1:] == (1.0, 1.0)  # the downscaled view, then native crops


def test_an_explicit_plan_joined_by_plus_may_name_members_outside_the_pool():
    assert "dcp" not in DEFAULT_POOL
    assert AdaptiveRestorer.create("haze:dcp+noise:ffdnet-color").explicit == [PlanStep("haze", "dcp"), PlanStep("noise", "ffdnet-color")]


def test_explicit_plans_are_parsed_and_checked():
    assert explicit_plan("jpeg:dcp, noise:ffdnet-color", {"dcp", "ffdnet-color"}) == [PlanStep("jpeg", "dcp"), PlanStep("noise", "ffdnet-color")]
    assert explicit_plan("jpeg:dcp+noise:ffdnet-color", {"dcp", "ffdnet-color"}) == [PlanStep("jpeg", "dcp"), PlanStep("noise", "ffdnet-color")]
    for bad, message in (("noise", "LABEL:METHOD"), ("sharpen:dcp", "unknown label"), ("noise:magic", "unknown method"), ("", "empty plan")):
        with pytest.raises(ValueError, match=message):
            explicit_plan(bad, {"dcp", "ffdnet-color"})


# --------------------------------------------------------------------------- the shipped pool


def test_the_shipped_classifier_and_pool_denoise_a_held_out_photo_with_ffdnet():
    adaptive = AdaptiveRestorer.create("auto")
    clean = _clean()
    noisy = degrade.noise(clean, np.random.default_rng(0), sigma=25).image
    result = adaptive.restore_planned(image_to_tensor(noisy))
    assert result.plan.steps[0] == PlanStep("noise", "ffdnet-color")
    assert psnr(tensor_to_rgb(result.image), clean) > psnr(noisy, clean) + 6
    clean_result = adaptive.restore_planned(image_to_tensor(clean))
    assert clean_result.plan.steps == [] and np.array_equal(tensor_to_rgb(clean_result.image), clean)


def test_a_step_rolled_back_on_the_whole_image_gives_way_to_the_next_best_member():
    from irestore.plan.search import Evaluation, Plan

    planner = Planner(MeasuringClassifier(), {"harmful-when-large": HarmfulWhenLarge(), **_real("gamma")},
                      {"lowlight": ("harmful-when-large", "gamma")}, PlannerSettings(refine=None))
    clean = np.tile(_clean(), (2, 2, 1))
    dark = image_to_tensor(degrade.lowlight(clean, np.random.default_rng(0), brightness=0.08).image)
    plan = Plan("auto", [PlanStep("lowlight", "harmful-when-large")], ["lowlight"], ["lowlight"], {},
                evaluations=[Evaluation([], "lowlight:harmful-when-large", 1.0, 0.1, 0.0, "kept"),
                             Evaluation([], "lowlight:gamma", 1.0, 0.2, 0.0, "kept")])
    out, run = planner.run(dark, plan, planner.classifier.classify(dark))
    assert [(e["step"], e["kept"]) for e in run] == [("lowlight:harmful-when-large", False), ("lowlight:gamma", True)]
    assert psnr(tensor_to_rgb(out), clean) > psnr(tensor_to_rgb(dark), clean) + 3


class Smoother(ArrayMethod):
    """A generalist stand-in refinement: a light box blur (removes what is left of noise)."""

    card = Card("smoother", "3x3 box blur", fixes={"noise": (0, 75)}, any_input=True, s_per_mp=0.0)

    def restore_array(self, image, condition):
        import cv2

        return cv2.blur(image, (3, 3))


def test_the_refinement_is_tried_last_only_when_asked_and_kept_only_when_it_clearly_helps():
    pool = {"harmful": Harmful(), **_real("gamma"), "smoother": Smoother()}
    noisy_dark = degrade.noise(degrade.lowlight(_clean(), np.random.default_rng(0), brightness=0.08).image,
                               np.random.default_rng(1), sigma=15).image
    without = Planner(MeasuringClassifier(), pool, {"lowlight": ("gamma",)}, PlannerSettings(refine=None))
    plan = without.plan(image_to_tensor(noisy_dark), without.classifier.classify(image_to_tensor(noisy_dark)))
    assert [str(s) for s in plan.steps] == ["lowlight:gamma"] and "refine" not in str(plan.to_dict())
    refined = Planner(MeasuringClassifier(), pool, {"lowlight": ("gamma",)}, PlannerSettings(refine="smoother"))
    plan = refined.plan(image_to_tensor(noisy_dark), refined.classifier.classify(image_to_tensor(noisy_dark)))
    assert [str(s) for s in plan.steps] == ["lowlight:gamma", "refine:smoother"]  # brightened noise, then smoothed
    assert plan.evaluations[-1].step == "refine:smoother" and plan.evaluations[-1].gain > 0.1
    harmful = Planner(MeasuringClassifier(), pool, {"lowlight": ("gamma",)}, PlannerSettings(refine="harmful"))
    plan = harmful.plan(image_to_tensor(noisy_dark), harmful.classifier.classify(image_to_tensor(noisy_dark)))
    assert [str(s) for s in plan.steps] == ["lowlight:gamma"] and plan.evaluations[-1].outcome == "rolled back"


def test_the_preferred_member_wins_unless_another_is_clearly_better():
    noisy = image_to_tensor(degrade.noise(_clean(), np.random.default_rng(0), sigma=25).image)

    def plan(**settings):
        planner = Planner(MeasuringClassifier(), _real("nlm", "ffdnet-color"), {"noise": ("nlm", "ffdnet-color")},
                          PlannerSettings(refine=None, **settings))
        return AdaptiveRestorer(planner).plan(noisy)[0]

    first = plan(accept=1.0)  # any fix ends the label's search: the second member is not tried
    assert [e.step for e in first.evaluations] == ["noise:nlm"] and [str(s) for s in first.steps] == ["noise:nlm"]
    by_score = plan(accept=0.0, preference_penalty=0.0)
    scores = {e.step: e.score_after for e in by_score.evaluations}
    assert set(scores) == {"noise:nlm", "noise:ffdnet-color"}
    assert [str(s) for s in by_score.steps] == [min(scores, key=scores.get)]  # no penalty: the lower score wins
    assert [str(s) for s in plan(accept=0.0, preference_penalty=10.0).steps] == ["noise:nlm"]  # a large one keeps the preferred


def test_each_step_is_told_its_own_degradation_unless_the_user_wrote_a_prompt():
    probabilities = dict.fromkeys(LABELS, 0.0) | {"rain": 0.9, "haze": 0.8}
    severity = dict.fromkeys(DEGRADATIONS, 0.0) | {"rain": 0.9, "haze": 0.2}
    classification = Classification(probabilities, severity, torch.zeros(1, 8))
    planner = Planner(MeasuringClassifier(), {}, {})
    rain = planner.condition(PlanStep("rain", "allinone-small"), classification, "")
    assert rain.labels == ("rain",) and rain.prompt == "a photo with heavy rain streaks"
    assert planner.condition(PlanStep("haze", "allinone-small"), classification, "").prompt == "a photo with mild haze"
    assert planner.condition(PlanStep("refine", "allinone-small"), classification, "").prompt == "a photo with heavy rain streaks and mild haze"
    assert planner.condition(PlanStep("rain", "allinone-small"), classification, "remove the rain").prompt == "remove the rain"


class Revealer(ArrayMethod):
    """Brightens a dark image but brings up hidden noise with it (as brightening a dark photo does)."""

    card = Card("revealer", "brightens, and noise appears", fixes={"lowlight": (0.25, 0.02)}, s_per_mp=0.0)

    def restore_array(self, image, condition):
        rng = np.random.default_rng(0)
        bright = image * (0.45 / max(float(image.mean()), 1e-3))
        return np.clip(bright + rng.normal(0, 20 / 255, image.shape), 0, 1).astype(np.float32)


def _dark() -> np.ndarray:
    """Underexposed without visible noise (``degrade.lowlight`` adds sensor noise, which the measuring classifier would see)."""
    return degrade.quantize(_clean() * 0.15)


def test_a_step_that_only_helps_with_the_next_one_is_kept_by_the_look_ahead():
    pool = {"revealer": Revealer(), **_real("ffdnet-color")}
    preferences = {"lowlight": ("revealer",), "noise": ("ffdnet-color",)}
    dark = image_to_tensor(_dark())
    greedy = _planner(pool, preferences, lookahead=False).restore_planned(dark)
    assert greedy.plan.steps == [] and [e.outcome for e in greedy.plan.evaluations] == ["rolled back"]
    result = _planner(pool, preferences).restore_planned(dark)
    assert [str(s) for s in result.plan.steps] == ["lowlight:revealer", "noise:ffdnet-color"]
    assert result.plan.provisional == [0]
    assert [e.outcome for e in result.plan.evaluations][:2] == ["tentative", "kept"]
    assert [(e["step"], e["kept"]) for e in result.run] == [("lowlight:revealer", True), ("noise:ffdnet-color", True)]
    assert psnr(tensor_to_rgb(result.image), _clean()) > psnr(_dark(), _clean()) + 3


class BrightButNoisy(ArrayMethod):
    """Brightens fully (low light gone) but adds heavy noise: alone it does not help."""

    card = Card("bright-but-noisy", "gamma plus noise", fixes={"lowlight": (0.25, 0.02)}, s_per_mp=0.0)

    def restore_array(self, image, condition):
        bright = image ** 0.35
        return np.clip(bright + np.random.default_rng(0).normal(0, 0.15, image.shape), 0, 1).astype(np.float32)


def test_a_tentative_step_that_removes_its_label_does_not_stop_the_label_s_other_members():
    pool = {"bright-but-noisy": BrightButNoisy(), **_real("gamma")}
    adaptive = _planner(pool, {"lowlight": ("bright-but-noisy", "gamma")})
    smooth = cv2.GaussianBlur(_clean(), (0, 0), 2.0)  # no noise the stand-in could see before the step
    dark = image_to_tensor(smooth * (0.08 / smooth.mean()))  # exposure alone, no sensor noise
    result = adaptive.restore_planned(dark)
    outcomes = {e.step: e.outcome for e in result.plan.evaluations}
    assert outcomes["lowlight:bright-but-noisy"] == "rolled back"  # tentative, then nothing paid for it
    assert outcomes["lowlight:gamma"] == "kept" and [str(s) for s in result.plan.steps] == ["lowlight:gamma"]


def test_a_tentative_step_without_a_follow_up_that_pays_is_rolled_back():
    result = _planner({"revealer": Revealer()}, {"lowlight": ("revealer",)}).restore_planned(image_to_tensor(_dark()))
    assert result.plan.steps == [] and [e.outcome for e in result.plan.evaluations] == ["rolled back"]


def test_on_the_whole_image_a_provisional_step_falls_with_a_follow_up_that_does_not_pay():
    from irestore.plan.search import Evaluation, Plan

    planner = Planner(MeasuringClassifier(), {"revealer": Revealer(), "harmful": Harmful()},
                      {"lowlight": ("revealer",), "noise": ("harmful",)}, PlannerSettings(refine=None))
    dark = image_to_tensor(_dark())
    plan = Plan("auto", [PlanStep("lowlight", "revealer"), PlanStep("noise", "harmful")], ["lowlight"], ["lowlight"], {},
                evaluations=[Evaluation([], "lowlight:revealer", 1.0, 1.0, 0.0, "tentative"),
                             Evaluation(["lowlight:revealer"], "noise:harmful", 1.0, 0.5, 0.0, "kept")], provisional=[0])
    out, run = planner.run(dark, plan, planner.classifier.classify(dark))
    assert [(e["step"], e["kept"]) for e in run] == [("lowlight:revealer", False), ("noise:harmful", False)]
    assert torch.equal(out, dark)


# --------------------------------------------------------------------------- generative members


@pytest.mark.parametrize("text,detail", [
    ("sharpen this photo", True), ("enhance details, remove the noise", True), ("remove the noise", False),
    ("enhance this photo", False), ("don't sharpen it", False),
])
def test_a_prompt_that_asks_for_detail_lets_generative_members_run(text, detail):
    intent = parse_intent(text, from_user=True)
    assert intent.detail == detail
    assert ("lowres" in intent.force) == detail  # detail comes from restoring at the content's resolution
    assert not parse_intent(text, from_user=False).detail  # a caption never asks for it


def test_generative_members_are_offered_only_when_detail_is_asked():
    from irestore.plan.pool import GENERATIVE_POOL, preferences

    names = ("waifu2x-photo", *GENERATIVE_POOL)
    assert preferences(names)["lowres"] == ("waifu2x-photo",)
    assert preferences(names, generative=True)["lowres"] == ("realesrgan-x4plus", "waifu2x-photo")
    adaptive = AdaptiveRestorer.create("auto", classifier=MeasuringClassifier())
    assert adaptive.planner_for(parse_intent("sharpen it")) is adaptive.detail_planner
    assert adaptive.planner_for(parse_intent("remove the rain")) is adaptive.planner
    assert adaptive.planner.members_for("lowres") == ("waifu2x-photo",)
    assert adaptive.detail_planner.members_for("lowres")[0] == "realesrgan-x4plus"


# --------------------------------------------------------------------------- self-ensemble where it pays


class Denoiser(ArrayMethod):
    """FFDNet's job done by a Gaussian blur, with a declared self-ensemble gain and cost."""

    def __init__(self, gain, s_per_mp):
        self.card = Card("blur-denoiser", "test member", fixes={"noise": (0, 75)}, ensemble_gain=gain, s_per_mp=s_per_mp)
        self.calls = 0

    def restore_array(self, image, condition):
        self.calls += 1
        return cv2.GaussianBlur(image, (0, 0), 1.5)


@pytest.mark.parametrize("gain,s_per_mp,expected", [(0.5, 1.0, 8), (0.5, 1e6, 1), (0.01, 1.0, 1), (None, 1.0, 1)])
def test_the_whole_image_run_uses_a_self_ensemble_only_where_it_pays_at_an_acceptable_cost(gain, s_per_mp, expected):
    member = Denoiser(gain, s_per_mp)
    adaptive = _planner({"blur-denoiser": member}, {"noise": ("blur-denoiser",)})
    noisy = degrade.noise(_clean(), np.random.default_rng(0), sigma=25).image
    result = adaptive.restore_planned(image_to_tensor(noisy))
    assert [e["step"] for e in result.run] == ["noise:blur-denoiser"] and result.run[0]["kept"]
    assert result.run[0].get("ensemble", 1) == expected
    proxy_calls = sum(1 for e in result.plan.evaluations if e.step == "noise:blur-denoiser")
    assert member.calls == proxy_calls + expected  # the proxy search never pays for the ensemble


def test_the_measured_gains_keep_the_shipped_members_single():
    from irestore.plan.search import PlannerSettings

    for name in ("ffdnet-color", "waifu2x-photo"):
        card = method_info(name).card
        assert card.ensemble_gain is not None and card.ensemble_gain < PlannerSettings().ensemble_min_gain


# --------------------------------------------------------------------------- what a step may take credit for


class DarkThroughNoiseClassifier(MeasuringClassifier):
    """Sees low light only through its sensor noise (as the shipped judge read a denoised dark photo as
    far less dark): a denoiser alone makes the dark photo look fixed."""

    def classify(self, image: torch.Tensor) -> Classification:
        result = super().classify(image)
        probabilities = result.probabilities | {"lowlight": result.probabilities["lowlight"] * result.probabilities["noise"]}
        probabilities["clean"] = math.prod(1 - probabilities[d] for d in DEGRADATIONS)
        return Classification(probabilities, result.severity, result.embedding, backend="measuring")


def test_a_step_gets_no_credit_for_a_target_it_does_not_fix():
    """Denoising does not brighten: the dark photo keeps its low-light reading until the brightening
    member has run, so the plan brightens it."""
    pool, preferences = _real("ffdnet-color", "gamma"), {"noise": ("ffdnet-color",), "lowlight": ("gamma",)}
    planner = Planner(DarkThroughNoiseClassifier(), pool, preferences, PlannerSettings(refine=None))
    image = _dark_noisy()
    result = AdaptiveRestorer(planner, "auto").restore_planned(image)
    assert {str(s) for s in result.plan.steps} == {"noise:ffdnet-color", "lowlight:gamma"}
    assert float(result.image.mean()) > 0.3  # brightened (the dark input's mean is about 0.08)
    assert result.to_record()["plan_details"]["targets"] == ["noise", "lowlight"]
    fixed = planner.fixes(PlanStep("noise", "ffdnet-color"), [image], [image])
    held = planner.hold({"noise": 0.1, "lowlight": 0.1}, {"noise": 0.9, "lowlight": 0.9}, fixed)
    assert held == {"noise": 0.1, "lowlight": 0.9}
    assert planner.hold({"noise": 0.95}, {"noise": 0.9}, []) == {"noise": 0.95}  # a step may add what it does not fix


class PaleClassifier(MeasuringClassifier):
    """Reads haze from brightness alone, with a shallow slope: a pale photo is "hazy" at about 0.6;
    it sees nothing else (not even grain)."""

    def classify(self, image: torch.Tensor) -> Classification:
        result = super().classify(image)
        probabilities = dict.fromkeys(result.probabilities, 0.0) | {"haze": float(np.clip(2.0 * (float(image.mean()) - 0.35), 0, 1))}
        probabilities["clean"] = math.prod(1 - probabilities[d] for d in DEGRADATIONS)
        return Classification(probabilities, result.severity, result.embedding, backend="measuring")


class Darken(ArrayMethod):
    card = Card("darken", "lowers the brightness by 0.045", fixes={"haze": (0.02, 0.2)}, s_per_mp=0.0)

    def restore_array(self, image, condition):
        return np.clip(image - 0.045, 0, 1).astype(np.float32)


class Repaint(Darken):
    """The same drop in brightness, and the picture's contrast inverted about its mean: the judge's reading is the same."""

    card = Card("repaint", "darkens and repaints", fixes={"haze": (0.02, 0.2)}, s_per_mp=0.0)

    def restore_array(self, image, condition):
        darker = super().restore_array(image, condition)
        return np.clip(2 * darker.mean() - darker, 0, 1).astype(np.float32)


class DarkenAndDegrain(Darken):
    """The same drop in brightness, and the grain smoothed away (as a denoiser does): a large change
    pixel by pixel, a small one to the picture."""

    card = Card("darken-degrain", "darkens and smooths", fixes={"haze": (0.02, 0.2)}, s_per_mp=0.0)

    def restore_array(self, image, condition):
        return cv2.GaussianBlur(super().restore_array(image, condition), (7, 7), 2.0)


def _pale(grain: float = 0.0) -> torch.Tensor:
    grainy = 0.45 + 0.5 * _clean() + np.random.default_rng(3).normal(0, grain, _clean().shape)
    return image_to_tensor(degrade.quantize(np.clip(grainy, 0, 1).astype(np.float32)))


@pytest.mark.parametrize("member,grain,kept", [("darken", 0.0, True), ("repaint", 0.0, False), ("darken-degrain", 0.12, True)])
def test_the_more_a_step_changes_the_photo_the_more_it_must_be_seen_to_help(member, grain, kept):
    """The change is measured on the picture (block means), not pixel by pixel: removing grain is
    not repainting."""
    pool = {"darken": Darken(), "repaint": Repaint(), "darken-degrain": DarkenAndDegrain()}
    planner = Planner(PaleClassifier(), pool, {"haze": (member,)}, PlannerSettings(refine=None, change_cost=0.5))
    pale = _pale(grain)
    classification = planner.classifier.classify(pale)
    assert classification.labels == ["haze"]
    plan = planner.plan(pale, classification)
    [evaluation] = plan.evaluations
    assert 0.07 < evaluation.gain < 0.11  # the same small gain for all: above the bare margin (0.05)
    assert (evaluation.change > 0.15) == (member == "repaint")
    assert (evaluation.outcome == "kept") == kept and (plan.steps == [PlanStep("haze", member)]) == kept
    if member == "darken-degrain":  # pixel by pixel it changed more than the gain could pay for at this cost
        out = pool[member].restore(pale, Condition(("haze",), {}, ""), RunSettings(tile=None))
        assert 0.05 + 0.5 * float((out - pale).pow(2).mean().sqrt()) > evaluation.gain
    from irestore.plan.search import Plan

    forced_plan = Plan("auto", [PlanStep("haze", member)], ["haze"], ["haze"], {}, targets=["haze"])
    _, run = planner.run(pale, forced_plan, classification)  # the whole-image check follows the same rule
    assert run[0]["kept"] == kept and (run[0]["change"] > 0.15) == (member == "repaint")


def test_a_tentative_step_falls_when_its_follow_up_does_as_well_alone():
    """Darkening and adding noise, then denoising, beats the dark noisy photo, but denoising alone
    does at least as well: the harmful step is not kept as the first of a pair."""
    pool = {"harmful": Harmful(), **_real("ffdnet-color")}
    planner = Planner(MeasuringClassifier(), pool, {"noise": ("ffdnet-color",), "lowlight": ("harmful",)},
                      PlannerSettings(refine=None))
    image = _dark_noisy()
    plan = planner.plan(image, planner.classifier.classify(image))
    scores = {(tuple(e.after), e.step): e for e in plan.evaluations}
    alone, pair = scores[((), "noise:ffdnet-color")], scores[(("lowlight:harmful",), "noise:ffdnet-color")]
    assert scores[((), "lowlight:harmful")].outcome == "rolled back"  # tentative, then its pair fell
    assert pair.score_before - pair.score_after > 0.5  # the pair alone would pass
    assert alone.score_after - pair.score_after < 0.05 and pair.outcome == "rolled back"
    assert plan.steps == [PlanStep("noise", "ffdnet-color")]


class DoesNothing(ArrayMethod):
    card = Card("does-nothing", "returns its input (a member outside its working range)", fixes={"noise": (0, 75)}, s_per_mp=0.0)

    def restore_array(self, image, condition):
        return image


def test_a_step_that_changes_nothing_is_rolled_back_at_once_not_kept_tentatively():
    """A no-op cannot open the way for a next step; kept tentatively, it would only let the search try
    the next step's second member behind it."""
    pool = {"does-nothing": DoesNothing(), **_real("gamma")}
    planner = Planner(MeasuringClassifier(), pool, {"noise": ("does-nothing",), "lowlight": ("gamma",)}, PlannerSettings(refine=None))
    image = _dark_noisy()
    plan = planner.plan(image, planner.classifier.classify(image))
    nothing = [e for e in plan.evaluations if e.step == "noise:does-nothing"]
    assert nothing and all(e.outcome == "rolled back" and e.change == 0.0 for e in nothing)
    assert all("noise:does-nothing" not in e.after for e in plan.evaluations)
    assert plan.steps == [PlanStep("lowlight", "gamma")]


class TagReadingClassifier(MeasuringClassifier):
    """Reads which stand-in steps have run from tags they leave (+0.1 in the red or the blue channel of
    a grey image): JPEG reads 0.9 until both have run (then ``jpeg_after``), and haze (``haze`` before)
    goes only with both (with the haze tag alone it reads a hair lower: that sequence ranks first
    among the tentative ones)."""

    def __init__(self, haze: float, jpeg_after: float):
        self.haze, self.jpeg_after = haze, jpeg_after

    def classify(self, image: torch.Tensor) -> Classification:
        red, blue = float(image[:, 0].mean()) > 0.55, float(image[:, 2].mean()) > 0.55
        haze = 0.0 if red and blue else self.haze - 0.04 if blue else self.haze
        probabilities = dict.fromkeys(LABELS, 0.0) | {"jpeg": self.jpeg_after if red and blue else 0.9, "haze": haze}
        probabilities["clean"] = math.prod(1 - probabilities[d] for d in DEGRADATIONS)
        return Classification(probabilities, dict.fromkeys(DEGRADATIONS, 0.0), torch.zeros(1, 8), backend="tags")


class Tag(ArrayMethod):
    def __init__(self, label: str, channel: int):
        self.card = Card(f"tag-{label}", "leaves a tag", fixes={label: (0, 100)}, s_per_mp=0.0)
        self.channel = channel

    def restore_array(self, image, condition):
        out = image.copy()
        out[..., self.channel] += 0.1
        return out


@pytest.mark.parametrize("haze,jpeg_after,explored,kept", [
    (0.16, 0.96, True, False),  # a guess completing the pair for a small gain (0.10): rolled back
    (0.16, 0.10, True, True),  # ... for a large one (0.96): kept
    (0.60, 0.96, False, True),  # detected haze: the same small pair gain suffices
])
def test_a_guessed_step_starts_no_pair_and_completes_one_only_with_a_clear_gain(haze, jpeg_after, explored, kept):
    planner = Planner(TagReadingClassifier(haze, jpeg_after), {"tag-jpeg": Tag("jpeg", 0), "tag-haze": Tag("haze", 2)},
                      {"jpeg": ("tag-jpeg",), "haze": ("tag-haze",)}, PlannerSettings(refine=None))
    grey = torch.full((1, 3, 96, 96), 0.5)
    plan = planner.plan(grey, planner.classifier.classify(grey))
    assert (plan.explored == ["haze"]) == explored
    outcomes = {(tuple(e.after), e.step): e.outcome for e in plan.evaluations}
    assert outcomes[((), "jpeg:tag-jpeg")] in ("tentative", "rolled back")  # alone it does not help
    assert ((("haze:tag-haze",), "jpeg:tag-jpeg") in outcomes) == (not explored)  # a guess starts no pair
    assert {str(s) for s in plan.steps} == ({"jpeg:tag-jpeg", "haze:tag-haze"} if kept else set())


class SlowAndUseless(ArrayMethod):
    """A costly member (by its card) that changes nothing the judge can see."""

    card = Card("slow", "a costly stand-in that never helps", fixes={"motion_blur": (3.0, 45.0)}, s_per_mp=80.0)

    def restore_array(self, image, condition):
        return np.clip(image * 0.98, 0, 1).astype(np.float32)


class SlowDenoiser(ArrayMethod):
    """The real FFDNet under a costly card."""

    card = Card("slow-ffdnet", "FFDNet, priced as a costly member", fixes={"noise": (0, 75)}, s_per_mp=80.0)

    def __init__(self):
        self.inner = create_restorer("ffdnet-color")

    def restore_array(self, image, condition):
        return tensor_to_rgb(self.inner.restore(image_to_tensor(image), condition, RunSettings(tile=None)))


@pytest.mark.parametrize("retry_cost", [60.0, None])
def test_a_costly_member_is_tried_once_per_depth(retry_cost):
    """On a dark noisy photo asked to be deblurred too, the costly deblurrer is tried on the best
    state of each depth only (without the limit, on every state of the beam)."""
    pool = {"slow": SlowAndUseless(), **_real("ffdnet-color", "gamma")}
    preferences = {"noise": ("ffdnet-color",), "lowlight": ("gamma",), "motion_blur": ("slow",)}
    planner = Planner(MeasuringClassifier(), pool, preferences, PlannerSettings(refine=None, retry_cost=retry_cost))
    image = _dark_noisy()
    plan = planner.plan(image, planner.classifier.classify(image), Intent(add=frozenset({"motion_blur"})))
    depths = [len(e.after) for e in plan.evaluations if e.step == "motion_blur:slow"]
    beams = collections.Counter(len(e.after) for e in plan.evaluations if e.step == "noise:ffdnet-color" or e.step == "lowlight:gamma")
    assert depths and beams[1] > 1  # two states at depth 1 could take it
    if retry_cost is None:
        assert max(collections.Counter(depths).values()) > 1
    else:
        assert sorted(depths) == sorted(set(depths)) == list(range(len(set(depths))))
    assert {str(s) for s in plan.steps} == {"noise:ffdnet-color", "lowlight:gamma"}


def test_a_costly_member_that_helps_is_still_chosen():
    pool = {"slow-ffdnet": SlowDenoiser(), **_real("gamma")}
    planner = Planner(MeasuringClassifier(), pool, {"noise": ("slow-ffdnet",), "lowlight": ("gamma",)}, PlannerSettings(refine=None))
    image = _dark_noisy()
    plan = planner.plan(image, planner.classifier.classify(image))
    assert {str(s) for s in plan.steps} == {"noise:slow-ffdnet", "lowlight:gamma"}
    assert collections.Counter(len(e.after) for e in plan.evaluations if e.step == "noise:slow-ffdnet").most_common(1)[0][1] == 1


class QuietDenoiser(SlowDenoiser):
    """FFDNet under a generalist's card that claims low light too (as the diffusion restorer's does)."""

    card = Card("quiet", "denoises, and claims to brighten", fixes={"noise": (0, 75), "lowlight": (0.25, 0.02)}, s_per_mp=1.0)


def test_a_step_fixes_low_light_only_when_it_brightens():
    """The judge reads low light through noise: the generalist's denoising would pass for
    brightening, and the dark photo would stay dark; it gets credit for the noise only."""
    pool = {"quiet": QuietDenoiser(), **_real("gamma")}
    planner = Planner(DarkThroughNoiseClassifier(), pool, {"noise": ("quiet",), "lowlight": ("quiet", "gamma")},
                      PlannerSettings(refine=None))
    image = _dark_noisy()
    result = AdaptiveRestorer(planner, "auto").restore_planned(image)
    assert "lowlight:gamma" in {str(s) for s in result.plan.steps}
    assert float(result.image.mean()) > 0.3  # brightened (the dark input's mean is about 0.08)
    assert planner.fixes(PlanStep("lowlight", "quiet"), [image], [image]) == {"noise"}
    assert planner.fixes(PlanStep("lowlight", "quiet"), [image], [image + 0.1]) == {"noise", "lowlight"}


class SlowAndDarkening(SlowAndUseless):
    """A costly member that darkens a bright photo: every try makes the views worse."""

    card = Card("slow-darkening", "a costly stand-in that makes things worse", fixes={"motion_blur": (3.0, 45.0)}, s_per_mp=80.0)

    def restore_array(self, image, condition):
        return (image * 0.3).astype(np.float32)


@pytest.mark.parametrize("retry_cost", [60.0, None])
def test_a_costly_member_that_made_things_worse_twice_is_not_tried_again(retry_cost):
    pool = {"slow-darkening": SlowAndDarkening(), **_real("ffdnet-color", "gamma")}
    preferences = {"noise": ("ffdnet-color",), "lowlight": ("gamma",), "motion_blur": ("slow-darkening",)}
    planner = Planner(MeasuringClassifier(), pool, preferences, PlannerSettings(refine=None, retry_cost=retry_cost))
    image = image_to_tensor(degrade.noise(_clean(), np.random.default_rng(1), sigma=15).image)
    plan = planner.plan(image, planner.classifier.classify(image), Intent(add=frozenset({"motion_blur", "lowlight"})))
    tries = [len(e.after) for e in plan.evaluations if e.step == "motion_blur:slow-darkening" and
             e.score_after > e.score_before + 0.5]  # each try made the views clearly worse
    assert tries == ([0, 1] if retry_cost is not None else [0, 1, 1, 2])
    assert plan.spec() == "noise:ffdnet-color"
