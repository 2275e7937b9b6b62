"""Tests for synthetic degradations, their parameters, descriptions and the spec language."""

import json
import re

import cv2
import numpy as np
import pytest
from skimage import data

from irestore import degrade as D

KEYWORDS = {
    "noise": r"nois|grain",
    "motion": r"motion|shake",
    "defocus": r"focus|lens",
    "gaussian_blur": r"blur|soft",
    "rain": r"rain",
    "haze": r"haz|fog|mist",
    "lowlight": r"dark|underexpos|low light",
    "jpeg": r"jpeg|compress|block",
    "lowres": r"resolution|downsampl",
}
OPS = [name for name in D.DEGRADATIONS if name != "clean"]


def _photo(fn, size=128) -> np.ndarray:
    img = fn()
    h, w = img.shape[:2]
    s = min(h, w)
    img = img[(h - s) // 2 : (h + s) // 2, (w - s) // 2 : (w + s) // 2]
    return cv2.resize(img, (size, size), interpolation=cv2.INTER_AREA).astype(np.float32) / 255


@pytest.fixture(scope="module")
def astronaut():
    return _photo(data.astronaut)


@pytest.fixture(scope="module")
def coffee():
    return _photo(data.coffee)


def rng(seed=0):
    return np.random.default_rng(seed)


@pytest.mark.parametrize("name", OPS)
def test_deterministic_and_seed_dependent(name, astronaut):
    a = D.degrade(astronaut, name, rng(1))
    b = D.degrade(astronaut, name, rng(1))
    c = D.degrade(astronaut, name, rng(2))
    assert (
        np.array_equal(a.image, b.image) and a.params == b.params and a.description == b.description
    )
    assert not np.array_equal(a.image, c.image) or a.params != c.params


@pytest.mark.parametrize("name", OPS)
def test_shape_dtype_range_quantised_json(name, coffee):
    d = D.degrade(coffee, name, rng(3))
    assert d.image.shape == coffee.shape and d.image.dtype == np.float32
    assert d.image.min() >= 0 and d.image.max() <= 1
    assert np.allclose(d.image * 255, np.round(d.image * 255), atol=1e-4)
    assert d.params["severity"] in D.SEVERITIES
    json.dumps(d.params)
    assert not np.array_equal(d.image, D.quantize(coffee))


def test_clean_is_the_quantised_image_labelled_clean(coffee):
    descriptions = set()
    for seed in range(8):
        d = D.degrade(coffee, "clean", rng(seed))
        assert np.array_equal(d.image, D.quantize(coffee)) and d.params["type"] == "clean"
        assert re.search(r"clean|no degradation|unchanged", d.description)
        descriptions.add(d.description)
    assert len(descriptions) >= 3
    # a spec can mix clean photos into a training set
    kinds = {D.degrade(coffee, "clean,noise:10", rng(seed)).params["type"] for seed in range(20)}
    assert kinds == {"clean", "noise"}


def test_uint8_input_and_bad_shape(astronaut):
    u8 = np.round(astronaut * 255).astype(np.uint8)
    assert np.array_equal(
        D.jpeg(u8, rng(), quality=30).image, D.jpeg(astronaut, rng(), quality=30).image
    )
    with pytest.raises(ValueError, match="HxWx3"):
        D.noise(astronaut[..., 0], rng())


@pytest.mark.parametrize("sigma", [10.0, 25.0, 40.0])
def test_gaussian_noise_sigma(sigma, astronaut):
    clean = D.quantize(0.4 + 0.2 * astronaut)  # keep clipping negligible
    d = D.noise(clean, rng(4), sigma=sigma)
    assert abs((d.image - clean).std() * 255 - sigma) < 0.03 * sigma + 0.3
    assert d.params == {
        "type": "noise",
        "kind": "gaussian",
        "sigma": sigma,
        "severity": d.params["severity"],
    }


def test_channel_and_poisson_noise(astronaut):
    clean = np.full((128, 128, 3), 0.5, np.float32)
    ch = D.noise(clean, rng(5), sigma=30, kind="channel")
    measured = (ch.image - clean).reshape(-1, 3).std(axis=0) * 255
    assert np.allclose(measured, ch.params["sigmas"], rtol=0.05)
    po = D.noise(clean, rng(5), sigma=30, kind="poisson")
    assert abs((po.image - clean).std() * 255 - 30) < 1.5  # std at mid-grey is sigma
    dark = D.noise(np.full_like(clean, 0.1), rng(5), sigma=30, kind="poisson")
    assert (dark.image - 0.1).std() < (po.image - clean).std()  # signal-dependent
    assert D.noise(astronaut, rng(5), kind="random").params["kind"] in D.NOISE_KINDS


def test_quantize_multiples_of_1_255():
    x = np.random.default_rng(0).uniform(-0.2, 1.2, (8, 8, 3))
    q = D.quantize(x)
    assert q.dtype == np.float32 and q.min() >= 0 and q.max() <= 1
    assert np.allclose(q * 255, np.round(q * 255), atol=1e-4)


def test_motion_kernel_properties():
    for seed in range(5):
        k = D.motion_kernel(21, rng(seed))
        assert k.shape == (21, 21) and k.min() >= 0 and abs(k.sum() - 1) < 1e-5
        assert (k > 0).sum() > 21  # a stroke, not a dot
    assert np.array_equal(D.motion_kernel(15, rng(9)), D.motion_kernel(15, rng(9)))
    with pytest.raises(ValueError):
        D.motion_kernel(1, rng())


def test_motion_params_rebuild_true_kernel(astronaut):
    d = D.motion(astronaut, rng(6), size=20)
    assert d.params["size"] == 21  # rounded up to odd
    k = D.kernel_from_params(d.params)
    ref = D.quantize(D.convolve(astronaut, k))
    assert np.array_equal(d.image, ref)


def test_blur_kernels_and_blur_family(astronaut):
    for k in (D.disk_kernel(3.5), D.gaussian_kernel(1.7)):
        assert k.min() >= 0 and abs(k.sum() - 1) < 1e-5 and k.shape[0] % 2 == 1
        assert np.allclose(k, k[::-1, ::-1])
    kinds = {D.blur(astronaut, rng(s)).params["type"] for s in range(12)}
    assert kinds == set(D.BLUR_KINDS)
    assert D.family_of("defocus") == "blur" and D.family_of("rain") == "rain"
    sharp = np.abs(np.diff(astronaut, axis=1)).mean()
    assert np.abs(np.diff(D.defocus(astronaut, rng(), radius=4).image, axis=1)).mean() < 0.7 * sharp


def test_haze_matches_formula():
    j = np.random.default_rng(0).uniform(0, 1, (16, 16, 3)).astype(np.float32)
    d = D.haze(j, rng(), beta=0.1, airlight=0.9, depth=5.0)
    t = np.exp(-0.1 * 5.0)
    assert np.abs(d.image - (j * t + 0.9 * (1 - t))).max() <= 0.5 / 255 + 1e-6
    assert (
        d.params["beta"] == 0.1
        and d.params["airlight"] == 0.9
        and d.params["severity"] == "moderate"
    )


def test_haze_depth_proxy_and_strength(coffee):
    depth = D.depth_proxy(coffee, rng())
    assert depth.shape == coffee.shape[:2]
    assert np.isclose(depth.min(), D.HAZE_DEPTH[0]) and np.isclose(depth.max(), D.HAZE_DEPTH[1])
    assert depth[:10].mean() > depth[-10:].mean()  # farther towards the top
    light = D.haze(coffee, rng(1), severity="light").image.std()
    heavy = D.haze(coffee, rng(1), severity="heavy").image.std()
    assert heavy < light < coffee.std()  # contrast falls with density


def test_jpeg_quality_monotonic(astronaut):
    err = [
        np.abs(D.jpeg(astronaut, rng(), quality=q).image - astronaut).mean() for q in (5, 20, 50)
    ]
    assert err[0] > err[1] > err[2]


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_lowres_sizes(scale):
    img = _photo(data.chelsea, 120)
    assert D.lowres(img, rng(), scale=scale).image.shape == img.shape
    small = D.lowres(img, rng(), scale=scale, keep_size=False)
    assert small.image.shape == (round(120 / scale), round(120 / scale), 3)
    assert small.params["severity"] == D.SEVERITIES[scale - 2]


def test_lowlight_brightness(astronaut):
    d = D.lowlight(astronaut, rng(7), brightness=0.1)
    assert abs(d.image.mean() - 0.1) < 0.015 and d.params["severity"] == "moderate"
    assert D.lowlight(astronaut, rng(7), severity="heavy").image.mean() < 0.1


def test_rain_layers_and_severity(coffee):
    light = D.rain(coffee, rng(8), severity="light")
    heavy = D.rain(coffee, rng(8), severity="heavy")
    assert len(light.params["layers"]) == 1 and 2 <= len(heavy.params["layers"]) <= 3
    assert (heavy.image - coffee).mean() > (light.image - coffee).mean() > 0  # streaks brighten


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("noise:25", (D.SpecItem("noise", 25.0),)),
        (
            "noise:0-50, rain ,haze",
            (D.SpecItem("noise", (0.0, 50.0)), D.SpecItem("rain"), D.SpecItem("haze")),
        ),
        ("jpeg:10", (D.SpecItem("jpeg", 10.0),)),
        ("lowres:4", (D.SpecItem("lowres", 4.0),)),
        ("Rain:Heavy", (D.SpecItem("rain", severity="heavy"),)),
        ("blur:light,mix", (D.SpecItem("blur", severity="light"), D.SpecItem("mix"))),
    ],
)
def test_parse_spec(spec, expected):
    assert D.parse_spec(spec) == expected


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("", "empty"),
        ("snow", "unknown degradation 'snow'"),
        ("noise:abc", "bad argument"),
        ("noise:50-10", "low > high"),
        ("noise:300", "outside allowed range"),
        ("jpeg:10.5", "integer"),
        ("blur:5", "only a severity word"),
        ("noise:", "empty argument"),
        ("noise:25,,rain", "unknown degradation ''"),
    ],
)
def test_parse_spec_errors(spec, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        D.parse_spec(spec)


def test_spec_values_reach_params(astronaut):
    assert D.degrade(astronaut, "noise:25", rng()).params["sigma"] == 25.0
    assert 0 <= D.degrade(astronaut, "noise:0-50", rng()).params["sigma"] <= 50
    assert D.degrade(astronaut, "jpeg:10", rng()).params["quality"] == 10
    assert D.degrade(astronaut, "lowres:3", rng()).params["scale"] == 3
    assert D.degrade(astronaut, "noise:heavy", rng()).params["severity"] == "heavy"
    chosen = {D.degrade(astronaut, "noise:25,rain,haze", rng(s)).params["type"] for s in range(20)}
    assert chosen == {"noise", "rain", "haze"}


def test_severity_bands():
    assert D.PRIMARY["noise"].severity(15) == "light"
    assert D.PRIMARY["noise"].severity(25) == "moderate"
    assert D.PRIMARY["noise"].severity(50) == "heavy"
    assert D.PRIMARY["jpeg"].severity(5) == "heavy" and D.PRIMARY["jpeg"].severity(90) == "light"
    assert D.PRIMARY["lowres"].severity(8) == "heavy"
    with pytest.raises(ValueError, match="severity"):
        D.noise(np.zeros((4, 4, 3), np.float32), rng(), severity="extreme")


@pytest.mark.parametrize("name", [n for n in OPS if n != "mix"])
def test_descriptions_name_degradation_and_vary(name, astronaut):
    descs = set()
    for seed in range(12):
        d = D.degrade(astronaut, name, rng(seed))
        assert re.search(KEYWORDS[d.params["type"]], d.description, re.IGNORECASE), d.description
        descs.add(d.description)
    assert len(descs) >= 4


def test_describe_severity_words():
    params = {"type": "rain", "severity": "heavy"}
    texts = {D.describe(params, rng(s)) for s in range(400)}
    assert "remove the heavy rain" in texts
    assert all(not re.search(r"\b(slight|mild|light|moderate)\b", t) for t in texts)


def test_mix_two_distinct_in_order(astronaut):
    seen = set()
    for seed in range(10):
        d = D.degrade(astronaut, "mix", rng(seed))
        steps = d.params["steps"]
        families = [D.family_of(p["type"]) for p in steps]
        assert len(steps) == 2 and families[0] != families[1]
        assert D.MIX_ORDER.index(families[0]) < D.MIX_ORDER.index(families[1])
        for p in steps:
            assert re.search(KEYWORDS[p["type"]], d.description, re.IGNORECASE), d.description
        seen.add(tuple(families))
    assert len(seen) >= 5


def test_mix_fixed_kinds_applied_in_order(astronaut):
    d = D.mix(astronaut, rng(3), kinds=["jpeg", "haze"])
    assert [p["type"] for p in d.params["steps"]] == ["haze", "jpeg"]
    r = rng(3)
    manual = D.jpeg(D.haze(astronaut, r).image, r)
    assert np.array_equal(d.image, manual.image)
    with pytest.raises(ValueError, match="distinct"):
        D.mix(astronaut, rng(), kinds=["motion", "defocus"])


def test_a_mixture_of_chosen_kinds_is_a_spec_item():
    (item,) = D.parse_spec("mix:haze+rain+noise:light")
    assert item.kinds == ("haze", "rain", "noise") and item.severity == "light"
    made = D.degrade(np.zeros((24, 24, 3), np.float32) + 0.5, "mix:noise+haze", np.random.default_rng(0))
    assert [s["type"] for s in made.params["steps"]] == ["haze", "noise"]  # applied in the camera's order
    assert "haze" in made.description or "mist" in made.description or "fog" in made.description
    for bad in ("mix:noise+noise", "mix:noise+sparkle", "mix:haze+noise:extreme"):
        with pytest.raises(ValueError, match="mix:"):
            D.parse_spec(bad)
