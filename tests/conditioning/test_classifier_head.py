"""The calibrated classifier: classical measurements, the decision rule, thresholds stored in
and loaded from checkpoints, calibration maths, the broad training family and the resumable
head training, end to end on tiny models."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from classifier_checkpoints import SMALL, headed_checkpoint, random_checkpoint
from irestore.conditioning import measures as M
from irestore.conditioning.classifier import Classification, DegradationClassifier
from irestore.degrade.broad import FAMILIES, broad_degradation
from irestore.diffusion.checkpoint import CheckpointError
from irestore.labels import LABELS, TYPE_TO_LABEL, targets_from_params
from irestore.registry import create_classifier
from irestore.training import classifier_head as H


def _texture(size: int = 256, seed: int = 0) -> torch.Tensor:
    """A photo-like texture: smoothed noise at several scales, in [0.2, 0.8]."""
    g = torch.Generator().manual_seed(seed)
    x = sum(F.interpolate(torch.rand(1, 1, size // s, size // s, generator=g), size=(size, size), mode="bicubic") for s in (4, 16, 64))
    x = (x - x.min()) / (x.max() - x.min())
    return (0.2 + 0.6 * x).repeat(1, 3, 1, 1)


def _measure(name: str, tiles: torch.Tensor) -> float:
    return float(M.tile_measures(tiles)[0, M.TILE_NAMES.index(name)])


# -- classical measurements: expectations from the physics, not from the code ----------------


def test_noise_estimates_recover_the_sigma_of_white_noise_on_a_flat_image():
    flat = torch.full((1, 3, 256, 256), 0.5)
    noisy = flat + torch.randn(1, 1, 256, 256, generator=torch.Generator().manual_seed(0)) * 20 / 255
    for name in ("noise_immerkaer", "noise_wavelet"):
        sigma = math.expm1(_measure(name, noisy))  # stored as log1p(sigma)
        assert sigma == pytest.approx(20, rel=0.1), name


def test_haze_lifts_the_dark_channel_percentiles_exactly_as_the_haze_model_says():
    # I = J t + A (1 - t) with uniform t and grey A: the dark channel (a minimum over channels and
    # a window) maps the same way, so every percentile p becomes p t + A (1 - t)
    clean = _texture(256, 3) * torch.tensor([1.0, 0.8, 0.6]).view(1, 3, 1, 1)
    clean[..., 40:80, 40:80] = 0.02  # a shadow
    t, airlight = 0.6, 0.9
    hazy = clean * t + airlight * (1 - t)
    before, after = M.haze_measures(clean, clean), M.haze_measures(hazy, hazy)
    assert torch.allclose(after, before * t + airlight * (1 - t), atol=1e-5)
    assert float(before[M.HAZE_NAMES.index("dark15_p01")]) < 0.05
    assert float(after[M.HAZE_NAMES.index("dark15_p01")]) > 0.3


def _lines(angle_deg: float, size: int = 128, seed: int = 0) -> torch.Tensor:
    """Thin bright parallel streaks at one angle over a photo-like texture."""
    y, x = torch.meshgrid(torch.arange(size).float(), torch.arange(size).float(), indexing="ij")
    a = math.radians(angle_deg)
    phase = (x * math.cos(a) + y * math.sin(a)) % 9
    return (_texture(size, seed) * 0.5 + 0.5 * (phase < 1.2).float()).clamp(0, 1)


def test_streak_measures_see_one_direction_in_every_tile_and_none_in_texture():
    names = M.STREAK_NAMES
    same = torch.cat([_lines(30, seed=i) for i in range(4)])
    crossed = torch.cat([_lines(angle, seed=i) for i, angle in enumerate((0, 45, 90, 135))])
    texture = torch.cat([_texture(128, i) for i in range(4)])
    streaks, mixed, plain = (dict(zip(names, M.streak_measures(t).tolist())) for t in (same, crossed, texture))
    assert streaks["streak_coherence_min"] > 0.6 and streaks["streak_tile_agreement"] > 0.95
    assert mixed["streak_coherence_min"] > 0.6 and mixed["streak_tile_agreement"] < 0.2  # each tile has one direction
    assert plain["streak_coherence_mean"] < 0.2 and streaks["streak_coherence_mean"] > 0.6


def test_a_head_reads_the_first_measurements_so_first_release_heads_keep_their_inputs(tmp_path):
    tiles, view = _texture(256, 5)[..., :256, :256].repeat(2, 1, 1, 1), _texture(256, 6)
    full = M.measure(tiles, view)
    assert full.shape == (M.NUM_MEASURES,) and M.NUM_MEASURES > M.FIRST_RELEASE_MEASURES == 163
    assert torch.equal(M.measure(tiles, view, M.FIRST_RELEASE_MEASURES), full[: M.FIRST_RELEASE_MEASURES])
    assert torch.allclose(full[M.FIRST_RELEASE_MEASURES :], M.extra_measures(tiles, view))
    # a head saved before the measurements count existed (no "measures" in its config) reads 163
    from irestore.conditioning.classifier import head_input_dim, load_classifier, save_classifier
    from irestore.models.degnet import DegHead, DegHeadConfig

    path, network = random_checkpoint(tmp_path / "backbone")
    network.head = DegHead(DegHeadConfig(input_dim=head_input_dim(SMALL, 163), hidden=(8,)))
    _, info = load_classifier(path)
    import dataclasses

    folder = save_classifier(tmp_path / "old", network, dataclasses.replace(info, head=network.head.config, thresholds={}))
    config = json.loads((folder / "config.json").read_text())
    del config["head"]["measures"]
    (folder / "config.json").write_text(json.dumps(config))
    from safetensors.torch import load_file, save_file

    weights = folder / "model.safetensors"
    save_file(load_file(weights), weights, metadata={"config": json.dumps(config)})
    old = DegradationClassifier.from_pretrained(folder)
    assert old.network.head.config.measures == 163
    image = torch.rand(1, 3, 300, 280, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        views, outputs = old._views(image)
        expected = old.network.head(old._features(views, outputs, 163))[0]
    got = old.classify(image).probabilities
    assert got["noise"] == pytest.approx(float(torch.sigmoid(expected[0, LABELS.index("noise")])), abs=1e-6)


def test_blockiness_sees_an_8px_grid_at_any_offset_and_nothing_in_smooth_content():
    blocks = torch.rand(1, 1, 40, 40, generator=torch.Generator().manual_seed(1))
    grid = F.interpolate(blocks, scale_factor=8, mode="nearest").repeat(1, 3, 1, 1) * 0.1 + 0.45 + _texture(320)[..., :320, :320] * 0.2
    import cv2

    noise = torch.rand(320, 320, generator=torch.Generator().manual_seed(4)).numpy()
    smooth = torch.from_numpy(cv2.GaussianBlur(noise, (0, 0), 3.0))[None, None].repeat(1, 3, 1, 1)  # no grid in it
    assert _measure("blockiness_h", grid[..., :256, :256]) > 1.0
    assert _measure("blockiness_h", grid[..., 3:259, 5:261]) > 1.0  # a crop moves the grid
    assert _measure("blockiness_v", grid[..., 3:259, 5:261]) > 1.0
    assert abs(_measure("blockiness_h", smooth[..., :256, :256])) < 0.2


def test_blur_lowers_the_high_band_of_the_spectrum():
    sharp = _texture() + torch.rand(1, 3, 256, 256, generator=torch.Generator().manual_seed(2)) * 0.05
    import cv2

    blurred = torch.from_numpy(cv2.GaussianBlur(sharp[0].permute(1, 2, 0).numpy(), (0, 0), 2.0)).permute(2, 0, 1)[None]
    high = f"spectrum_{M.SPECTRUM_BANDS - 2}"
    assert _measure(high, blurred) < _measure(high, sharp) - 1.0  # more than 10x less power


def test_linear_motion_is_anisotropic_and_disk_blur_is_not():
    import cv2

    texture = torch.rand(256, 256, generator=torch.Generator().manual_seed(3)).numpy()
    line = np.zeros((15, 15), np.float32)
    line[7, :] = 1 / 15
    disk = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (15, 15)).astype(np.float32)
    as_tiles = lambda img: torch.from_numpy(img)[None, None].repeat(1, 3, 1, 1)
    moved = as_tiles(cv2.filter2D(texture, -1, line))
    defocused = as_tiles(cv2.filter2D(texture, -1, disk / disk.sum()))
    assert _measure("anisotropy_max_min", moved) > _measure("anisotropy_max_min", defocused) + 1.0
    assert _measure("coherence", moved) > 0.5 > _measure("coherence", defocused)


def test_global_measures_of_a_uniform_grey_image():
    grey = torch.full((1, 3, 64, 96), 0.25)
    values = dict(zip(M.GLOBAL_NAMES, M.global_measures(grey).tolist()))
    assert values["luma_mean"] == pytest.approx(0.25, abs=1e-5)
    assert values["luma_std"] == pytest.approx(0.0, abs=1e-5)
    assert values["saturation"] == pytest.approx(0.0, abs=1e-5)
    assert values["dark_channel_median"] == pytest.approx(0.25, abs=1e-5)


def test_measure_has_a_fixed_length_and_is_finite_for_any_input():
    for tiles, view in ((torch.zeros(3, 3, 64, 64), torch.zeros(1, 3, 40, 70)), (torch.rand(8, 3, 256, 256), torch.rand(1, 3, 192, 256))):
        vector = M.measure(tiles, view)
        assert vector.shape == (M.NUM_MEASURES,) and torch.isfinite(vector).all()


# -- the decision rule -------------------------------------------------------------------------


def _classification(probabilities: dict[str, float], thresholds=None, threshold=0.5) -> Classification:
    full = {label: probabilities.get(label, 0.01) for label in LABELS}
    return Classification(full, {d: 0.5 for d in LABELS[1:]}, torch.zeros(1, 4), threshold=threshold, thresholds=thresholds)


def test_a_degradation_at_042_is_not_called_clean():
    result = _classification({"clean": 0.6, "motion_blur": 0.42})
    assert result.labels == ["motion_blur"] and not result.is_clean
    assert result.uncertain == ["motion_blur"] and result.top_label == "motion_blur"


def test_clean_only_when_every_degradation_is_confidently_absent():
    assert _classification({"clean": 0.9, "noise": 0.2, "haze": 0.24}).labels == ["clean"]
    assert _classification({"clean": 0.9, "noise": 0.2, "haze": 0.26}).labels == ["haze"]


def test_per_label_thresholds_decide_each_label():
    thresholds = {d: 0.5 for d in LABELS[1:]} | {"rain": 0.3, "jpeg": 0.8}
    result = _classification({"rain": 0.35, "jpeg": 0.7, "noise": 0.6}, thresholds)
    assert result.found == ["noise", "rain"]  # jpeg 0.7 is under its 0.8
    assert result.to_dict()["thresholds"]["rain"] == 0.3


# -- checkpoints ---------------------------------------------------------------------------------


def test_calibrated_thresholds_are_loaded_from_the_checkpoint(tmp_path):
    thresholds = {d: 0.5 for d in LABELS[1:]} | {"motion_blur": 0.3, "lowres": 0.7}
    path = headed_checkpoint(tmp_path / "c", {"clean": 0.2, "motion_blur": 0.35, "lowres": 0.65}, thresholds)
    classifier = create_classifier("degnet", str(path))
    result = classifier.classify(torch.rand(1, 3, 300, 400))
    assert result.probabilities["motion_blur"] == pytest.approx(0.35, abs=1e-4)
    assert result.threshold_of("motion_blur") == 0.3 and result.threshold_of("lowres") == 0.7
    assert result.labels == ["motion_blur"]  # lowres 0.65 < 0.7; at a plain 0.5 it would be found too
    assert json.loads((path / "config.json").read_text())["thresholds"] == thresholds
    override = create_classifier("degnet", str(path), threshold=0.5).classify(torch.rand(1, 3, 300, 400))
    assert override.labels == ["lowres"]  # 0.65 >= 0.5 > 0.35: an explicit threshold wins


def test_a_format_1_checkpoint_still_loads_with_one_threshold(tmp_path):
    path, _ = random_checkpoint(tmp_path / "v1")
    classifier = DegradationClassifier.from_pretrained(path)
    assert classifier.network.head is None and classifier.thresholds is None
    result = classifier.classify(torch.rand(1, 3, 64, 64))
    assert all(result.threshold_of(d) == 0.5 for d in LABELS[1:])


def test_a_head_that_does_not_fit_the_backbone_is_refused_naming_the_file(tmp_path):
    path = headed_checkpoint(tmp_path / "c", {}, {d: 0.5 for d in LABELS[1:]})
    config = json.loads((path / "config.json").read_text())
    config["head"]["input_dim"] += 1
    (path / "config.json").write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match="head input"):
        DegradationClassifier.from_pretrained(path)


# -- calibration maths ------------------------------------------------------------------------


def test_expected_calibration_error_of_known_cases():
    rng = np.random.default_rng(0)
    p = np.full((1000, 1), 0.3)
    calibrated = (np.arange(1000) < 300).astype(float)[:, None]
    assert H.expected_calibration_error(p, calibrated) == pytest.approx(0.0, abs=1e-9)
    overconfident = np.full((1000, 1), 0.9)
    assert H.expected_calibration_error(overconfident, (rng.random((1000, 1)) < 0.5).astype(float)) == pytest.approx(0.4, abs=0.05)


def test_platt_scaling_undoes_overconfident_logits():
    g = torch.Generator().manual_seed(0)
    true_logits = torch.randn(4000, 2, generator=g) * 2
    labels = (torch.rand(4000, 2, generator=g) < torch.sigmoid(true_logits)).float()
    scale, bias = H._platt(true_logits * 3 + 1, labels)  # a head 3x too confident, shifted
    assert scale.tolist() == pytest.approx([1 / 3, 1 / 3], abs=0.05)
    assert (bias / scale).tolist() == pytest.approx([-1.0, -1.0], abs=0.3)


def test_thresholds_are_chosen_between_the_classes_and_absent_levels_spare_clean_photos():
    p = np.zeros((300, len(LABELS)))
    y = np.zeros_like(p)
    y[:100, 1] = 1
    p[:100, 1] = np.linspace(0.6, 0.9, 100)  # noise positives
    p[100:200, 1] = np.linspace(0.0, 0.4, 100)  # other degradations
    y[100:200, 2] = 1
    y[200:, 0] = 1  # clean photos: 1 in 100 of them at 0.3 noise, the rest at 0.05
    p[200:, 1] = 0.05
    p[200, 1] = 0.3
    thresholds, absent = H.choose_levels(p, y, clean_budget=0.04)
    assert 0.4 < thresholds["noise"] <= 0.6
    assert 0.3 < absent["noise"] <= 0.325  # 1 % of clean photos at 0.3 is over the 0.5 % allowed
    assert absent["noise"] <= thresholds["noise"]


# -- the broad training family -------------------------------------------------------------------


@pytest.fixture(scope="module")
def photo():
    return np.clip(_texture(96, 5)[0].permute(1, 2, 0).numpy(), 0, 1)


@pytest.mark.parametrize("family", FAMILIES)
def test_each_broad_family_degrades_and_is_labelled_as_itself(photo, family):
    degraded = broad_degradation(photo, np.random.default_rng(0), family)
    labels, _, _ = targets_from_params(degraded.params)
    assert [LABELS[i] for i in np.flatnonzero(labels)] == [TYPE_TO_LABEL[degraded.params["type"]]]
    assert TYPE_TO_LABEL[degraded.params["type"]] == TYPE_TO_LABEL.get(family, family) or family == "defocus"
    assert degraded.image.shape == photo.shape and np.abs(degraded.image - photo).mean() > 1e-3


def test_broad_mixtures_carry_distinct_families_and_draws_are_seeded(photo):
    for seed in range(6):
        degraded = broad_degradation(photo, np.random.default_rng(seed), "mix")
        labels, _, _ = targets_from_params(degraded.params)
        assert labels.sum() == 2 and labels[0] == 0
    a = broad_degradation(photo, np.random.default_rng(7))
    b = broad_degradation(photo, np.random.default_rng(7))
    assert np.array_equal(a.image, b.image) and a.params == b.params


def test_broad_rain_haze_and_low_light_span_wide_parameter_ranges(photo):
    from irestore.degrade import broad

    rains = [broad.rain(photo, np.random.default_rng(seed)).params for seed in range(40)]
    own = [p for p in rains if "defocus" in p["layers"][0]]  # the widened model, not degrade's
    angles = [layer["angle"] for p in own for layer in p["layers"]]
    lengths = [layer["length"] for p in own for layer in p["layers"]]
    assert max(angles) - min(angles) > 45 and max(lengths) > 40 and min(lengths) < 10
    assert {p["blend"] for p in own} == {"screen", "additive", "lighten"}
    assert any(p["veil"] > 0 for p in own) and any(p["veil"] == 0 for p in own)
    assert {p["severity"] for p in rains} == {"light", "moderate", "heavy"}
    hazes = [broad.haze(photo, np.random.default_rng(seed)) for seed in range(20)]
    assert max(np.ptp(h.params["airlight"]) for h in hazes) > 0.05  # coloured atmospheric light
    assert min(h.params["beta"] for h in hazes) < 0.06 and max(h.params["beta"] for h in hazes) > 0.2
    dark = [broad.lowlight(photo, np.random.default_rng(seed)) for seed in range(20)]
    assert max(np.ptp(d.params["cast"]) for d in dark) > 0.1
    assert all(d.image.mean() < photo.mean() for d in dark)
    for degraded in (*hazes, *dark):
        assert degraded.image.min() >= 0 and degraded.image.max() <= 1
        labels, _, _ = targets_from_params(degraded.params)
        assert [LABELS[i] for i in np.flatnonzero(labels)] == [TYPE_TO_LABEL[degraded.params["type"]]]


def test_anisotropic_blur_kernel_and_compressed_noise(photo):
    from irestore.degrade import broad

    kernel = broad.anisotropic_kernel(3.0, 1.0, 90)  # long axis turned to vertical
    assert abs(float(kernel.sum()) - 1) < 1e-5
    ys, xs = np.mgrid[: kernel.shape[0], : kernel.shape[1]] - kernel.shape[0] // 2
    assert float((kernel * ys**2).sum()) == pytest.approx(9.0, rel=0.05)
    assert float((kernel * xs**2).sum()) == pytest.approx(1.0, rel=0.05)
    blurs = [broad.defocus(photo, np.random.default_rng(seed)).params for seed in range(20)]
    assert any(p.get("anisotropic") for p in blurs)
    noisy = [broad.noise(photo, np.random.default_rng(seed)).params for seed in range(40)]
    compressed = [p for p in noisy if "compressed" in p]
    assert compressed and all(60 <= p["compressed"] <= 95 for p in compressed)
    labels, _, _ = targets_from_params(compressed[0])
    assert [LABELS[i] for i in np.flatnonzero(labels)] == ["noise"]


def test_synthesis_spec_mixes_broad_families_with_degrade_items(photo):
    from irestore.degrade.broad import Synthesis

    synthesis = Synthesis("broad:rain, broad:clean, noise:10")
    kinds = {synthesis(photo, np.random.default_rng(seed)).params["type"] for seed in range(30)}
    assert kinds == {"rain", "clean", "noise"}
    assert Synthesis("noise:10")(photo, np.random.default_rng(0)).params["sigma"] == 10
    a, b = (Synthesis("broad")(photo, np.random.default_rng(3)) for _ in range(2))
    assert np.array_equal(a.image, b.image)
    for seed in range(12):  # broad:clean includes a downscaled look: shown at the photo's size
        assert Synthesis("broad:clean")(photo, np.random.default_rng(seed)).image.shape == photo.shape
    with pytest.raises(ValueError, match="unknown broad family 'fog'"):
        Synthesis("broad:fog")
    with pytest.raises(ValueError, match="unknown degradation"):
        Synthesis("broad:rain,fog")


def test_clean_variants_stay_labelled_clean(photo):
    for seed in range(8):
        labels, _, _ = targets_from_params(broad_degradation(photo, np.random.default_rng(seed), "clean").params)
        assert labels.tolist() == [1.0] + [0.0] * (len(LABELS) - 1)


# -- head training, end to end -------------------------------------------------------------------


def _photo_names(fraction: float) -> list[str]:
    """One photo name in each group."""
    names, groups = [], set()
    for i in range(100):
        name = f"p{i}.png"
        group = H.photo_group(name, fraction)
        if group not in groups:
            names.append(name)
            groups.add(group)
        if len(groups) == 2:
            return names
    raise AssertionError("no split")


def _photos_and_backbone(tmp_path):
    """A folder with one texture photo in each group (fit, calibrate) and a random backbone."""
    photos = tmp_path / "photos"
    photos.mkdir()
    for i, name in enumerate(_photo_names(0.2)):
        pixels = np.round(np.clip(_texture(128, i)[0].permute(1, 2, 0).numpy(), 0, 1) * 255).astype(np.uint8)
        Image.fromarray(pixels).save(photos / name)
    backbone, _ = random_checkpoint(tmp_path / "backbone")
    return photos, backbone


def test_head_training_is_resumable_and_writes_a_calibrated_checkpoint(tmp_path):
    photos, backbone = _photos_and_backbone(tmp_path)
    settings = H.CacheSettings(samples=12, chunk=3, crop=(64, 96))
    cache = tmp_path / "cache"
    H.build_cache(cache, photos, str(backbone), settings, workers=1)
    chunks = sorted(cache.glob("chunk-*.npz"))
    assert len(chunks) == 4
    first = H.read_cache(cache)
    assert first["features"].shape == (12, M.NUM_MEASURES + 3 * (2 * sum(SMALL.channels) + len(LABELS)))
    chunks[1].unlink()
    kept = chunks[0].stat().st_mtime_ns
    H.build_cache(cache, photos, str(backbone), settings, workers=1)
    assert chunks[0].stat().st_mtime_ns == kept  # only the missing chunk is computed again
    again = H.read_cache(cache)
    assert np.array_equal(again["features"], first["features"]) and np.array_equal(again["labels"], first["labels"])
    assert set(first["group"]) == {"fit", "calibrate"}
    with pytest.raises(SystemExit, match="other settings"):
        H.build_cache(cache, photos, str(backbone), H.CacheSettings(samples=12, chunk=4), workers=1)

    out = H.train_head(cache, str(backbone), tmp_path / "trained", epochs=2)
    config = json.loads((out / "config.json").read_text())
    assert config["format_version"] == 2 and set(config["thresholds"]) == set(LABELS[1:]) == set(config["absent_levels"])
    assert {"ece_before", "ece_after", "samples"} <= set(config["calibration"])
    classifier = DegradationClassifier.from_pretrained(out)
    assert classifier.thresholds == config["thresholds"] and classifier.absent_levels == config["absent_levels"]
    assert classifier.clean_level == config["clean_level"] is not None
    original = DegradationClassifier.from_pretrained(backbone)
    image = torch.rand(1, 3, 80, 90)
    assert torch.allclose(classifier.classify(image).embedding, original.classify(image).embedding)  # backbone untouched


def test_a_cache_from_before_new_measurements_is_extended_to_what_a_fresh_cache_holds(tmp_path):
    photos, backbone = _photos_and_backbone(tmp_path)
    settings = H.CacheSettings(samples=6, chunk=3, crop=(64, 96))
    cache = tmp_path / "cache"
    H.build_cache(cache, photos, str(backbone), settings, workers=1)
    fresh = H.read_cache(cache)
    # the photo list is pinned: a photo added later is never drawn, the samples stay the same
    Image.fromarray(np.zeros((128, 128, 3), np.uint8)).save(photos / "added-later.png")
    extra = M.NUM_MEASURES - M.FIRST_RELEASE_MEASURES
    chunk = sorted(cache.glob("chunk-*.npz"))[1]
    with np.load(chunk) as stored:
        rows = {key: stored[key] for key in stored.files}
    rows["features"] = rows["features"][:, :-extra]  # as a cache from before the new measurements
    np.savez(chunk, **rows)
    H.build_cache(cache, photos, str(backbone), settings, workers=1)
    extended = H.read_cache(cache)
    assert extended["features"].shape == fresh["features"].shape
    assert np.allclose(extended["features"], fresh["features"], atol=1e-6)
    # a head on the first release's measurements only, from the same cache, loads and classifies
    first = H.train_head(cache, str(backbone), tmp_path / "first", epochs=1, measures=M.FIRST_RELEASE_MEASURES)
    classifier = DegradationClassifier.from_pretrained(first)
    assert classifier.network.head.config.measures == M.FIRST_RELEASE_MEASURES
    assert set(classifier.classify(torch.rand(1, 3, 70, 90)).probabilities) == set(LABELS)
    with pytest.raises(SystemExit, match=f"hold {M.NUM_MEASURES} measurements"):
        H.train_head(cache, str(backbone), tmp_path / "too-many", epochs=1, measures=M.NUM_MEASURES + 1)
    assert json.loads((cache / "cache.json").read_text())["photo_list"] == sorted(_photo_names(0.2))
    # a photo of the cache that changed is caught when its samples are drawn again
    rows["features"] = rows["features"]
    np.savez(chunk, **rows)
    first = sorted(photos.glob("p*.png"))
    for path in first:
        Image.fromarray(np.full((128, 128, 3), 200, np.uint8)).save(path)
    with pytest.raises(SystemExit, match="differs from the cached one"):
        H.build_cache(cache, photos, str(backbone), settings, workers=1)


def test_the_restorer_embedding_is_computed_the_way_restorer_training_computes_it(tmp_path):
    path, network = random_checkpoint(tmp_path / "c")
    classifier = DegradationClassifier.from_pretrained(path)
    crop = torch.rand(1, 3, 128, 128)
    with torch.no_grad():
        trained_on = network(crop).embedding  # what restorer training conditions on (tasks.py)
    assert torch.allclose(classifier.classify(crop).embedding, trained_on, atol=1e-5)
    large = torch.rand(1, 3, 600, 900)
    # 8 tiles of a 600 x 900 image: the 2 x 4 grid, rows at 0 and 344, columns spread over 644 px
    rows, cols = (0, 344), (0, 215, 429, 644)
    tiles = torch.cat([large[..., y : y + 256, x : x + 256] for y in rows for x in cols])
    with torch.no_grad():
        expected = F.normalize(network(tiles).embedding.mean(0, keepdim=True), dim=-1)
    assert torch.allclose(classifier.classify(large).embedding, expected, atol=1e-5)


def test_absent_levels_from_the_checkpoint_decide_what_is_clean():
    levels = {d: 0.5 for d in LABELS[1:]}
    strict = _classification({"clean": 0.7, "haze": 0.3}, levels)
    assert strict.labels == ["haze"]  # default absent level: half the threshold, 0.25
    lenient = Classification(strict.probabilities, strict.severity, strict.embedding, thresholds=levels,
                             absent_levels=dict.fromkeys(LABELS[1:], 0.4))
    assert lenient.labels == ["clean"] and lenient.to_dict()["absent_levels"]["haze"] == 0.4


def test_held_out_photos_are_left_out_of_the_training_photos(tmp_path):
    photos, held = tmp_path / "photos", tmp_path / "held"
    (photos / "a").mkdir(parents=True)
    (held / "a").mkdir(parents=True)
    pixels = np.full((40, 40, 3), 128, np.uint8)
    for name in ("a/one.png", "a/two.png"):
        Image.fromarray(pixels).save(photos / name)
    Image.fromarray(pixels).save(held / "a/two.png")
    assert [name for name, _ in H.load_photos(photos, exclude=held)] == ["a/one.png"]


def test_a_low_clean_probability_keeps_an_image_from_being_called_clean():
    levels = {d: 0.9 for d in LABELS[1:]}
    probabilities = {"clean": 0.03, "haze": 0.7}  # haze under its absent level 0.8, clean improbable
    absent = dict.fromkeys(LABELS[1:], 0.8)
    plain = _classification(probabilities, levels)
    plain = Classification(plain.probabilities, plain.severity, plain.embedding, thresholds=levels, absent_levels=absent)
    assert plain.labels == ["clean"]  # without a clean level
    doubted = Classification(plain.probabilities, plain.severity, plain.embedding, thresholds=levels,
                             absent_levels=absent, clean_level=0.05)
    assert doubted.doubts_clean and doubted.labels == ["haze"] and doubted.uncertain == ["haze"]
    sure = Classification({**plain.probabilities, "clean": 0.2}, plain.severity, plain.embedding, thresholds=levels,
                          absent_levels=absent, clean_level=0.05)
    assert sure.labels == ["clean"]


def test_the_judge_is_degnet_alone_and_the_planner_judges_with_it(tmp_path):
    from irestore.conditioning.classifier import view_batches
    from irestore.plan import Planner, PlannerSettings

    path = headed_checkpoint(tmp_path / "c", {"clean": 0.2, "noise": 0.9}, {d: 0.5 for d in LABELS[1:]})
    classifier = DegradationClassifier.from_pretrained(path)
    image = torch.rand(1, 3, 300, 400)
    with torch.no_grad():
        views = [classifier.network.float()(v) for v in view_batches(image)]
    per_view = torch.cat([torch.sigmoid(o.logits) for o in views]).mean(0)
    judged = classifier.judge(image)
    assert judged.probabilities["noise"] == pytest.approx(float(per_view[LABELS.index("noise")]), abs=1e-5)
    assert judged.thresholds is None and judged.clean_level is None
    assert classifier.classify(image).probabilities["noise"] == pytest.approx(0.9, abs=1e-4)  # the head
    planner = Planner(classifier, {}, {}, PlannerSettings(refine=None))
    assert planner.classifier_score(image) == pytest.approx(sum(float(per_view[i]) for i in range(1, len(LABELS))), abs=1e-4)
    v1, _ = random_checkpoint(tmp_path / "v1")
    assert DegradationClassifier.from_pretrained(v1).judge is None
